"""Streaming k-space frontend: per-line encoder plus a cross-line aggregation stage.

No Fourier transform is used. Each acquired phase-encode line
``(coils, kx)`` is mapped on arrival by learned complex linear layers along
``kx`` to a line token ``(transforms, coils, 2, nx)``. After the last line,
``aggregate`` mixes the tokens across lines with learned weights indexed by
each line's ``ky`` position (a position embedding per line and output row),
conditions the result on the sampling mask (FiLM) and yields a feature map
``(channels, ny, nx)`` for the trunk. Because the line stage is linear and
bias-free, the batch path over a zero-filled array and the per-line path over
the acquired lines alone give the same features.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kmtr_stream.model.config import ModelConfig


def _complex_init(
    *shape: int, fan_in: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random complex weights (real, imag stacked last) with unit output variance."""
    std = 1.0 / math.sqrt(2.0 * fan_in)
    return torch.randn(*shape, 2, generator=generator) * std


def _fourier_init(
    h: int, n_out: int, n_in: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(h, n_out, n_in, 2)`` centred inverse-DFT basis (sample ``n // 2`` is DC).

    Transform 0 is the basis itself; the others are perturbed copies, so the
    transforms can specialise. Only the starting point: the weights are learned.
    """
    out_pos = torch.arange(n_out, dtype=torch.float64) - n_out // 2
    in_pos = torch.arange(n_in, dtype=torch.float64) - n_in // 2
    angle = 2.0 * math.pi * out_pos[:, None] * in_pos[None, :] / n_in
    basis = torch.stack((torch.cos(angle), torch.sin(angle)), dim=-1) / math.sqrt(n_in)
    w = basis.float()[None].repeat(h, 1, 1, 1)
    if h > 1:
        noise = torch.randn(h - 1, n_out, n_in, 2, generator=generator)
        w[1:] += noise * (0.5 / math.sqrt(2.0 * n_in))
    return w


class KSpaceFrontend(nn.Module):
    """Undersampled multi-coil k-space -> image-grid feature map, line by line.

    Attributes:
        out_channels: channels of the feature map handed to the trunk.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h, c = cfg.n_transforms, cfg.n_coils
        # Learned complex maps along kx (per transform), then across ky lines.
        if cfg.frontend_init == "fourier":
            self.wx = nn.Parameter(_fourier_init(h, cfg.nx, cfg.n_kx))
            self.wy = nn.Parameter(_fourier_init(h, cfg.ny, cfg.n_ky))
        else:
            self.wx = nn.Parameter(_complex_init(h, cfg.nx, cfg.n_kx, fan_in=cfg.n_kx))
            self.wy = nn.Parameter(_complex_init(h, cfg.ny, cfg.n_ky, fan_in=cfg.n_ky // 4))
        # real, imag and modulus per transform and coil (+ coil-combined magnitude)
        self.per_transform = c * 3 + (1 if cfg.coil_magnitude else 0)
        raw = h * self.per_transform
        self.norm = nn.GroupNorm(h, raw)
        film_out = nn.Linear(64, 2 * raw)
        # FiLM starts as the identity so early training sees the plain features.
        nn.init.zeros_(film_out.weight)
        nn.init.zeros_(film_out.bias)
        self.film = nn.Sequential(nn.Linear(cfg.n_ky + 1, 64), nn.GELU(), film_out)
        self.out_channels = raw

    def encode_lines(self, lines: torch.Tensor) -> torch.Tensor:
        """Encode phase-encode lines independently of each other.

        Args:
            lines: ``(..., coils, kx)`` complex k-space lines (any leading axes,
                e.g. ``(batch, lines)``).

        Returns:
            ``(..., transforms, coils, 2, nx)`` float line tokens (real, imag).
        """
        # Learned transforms need float32 even under mixed precision.
        with torch.autocast(device_type=lines.device.type, enabled=False):
            x = torch.view_as_real(lines.to(torch.complex64))  # (..., coils, kx, 2)
            xr, xi = x[..., 0], x[..., 1]
            wr, wi = self.wx[..., 0].float(), self.wx[..., 1].float()  # (h, nx, kx)
            # complex product (wr + i wi)(xr + i xi), contracted over kx
            yr = torch.einsum("hnk,...ck->...hcn", wr, xr) - torch.einsum(
                "hnk,...ck->...hcn", wi, xi
            )
            yi = torch.einsum("hnk,...ck->...hcn", wr, xi) + torch.einsum(
                "hnk,...ck->...hcn", wi, xr
            )
            return torch.stack((yr, yi), dim=-2)

    def encode_line(self, line: torch.Tensor) -> torch.Tensor:
        """Encode one line ``(coils, kx)`` complex -> token ``(transforms, coils, 2, nx)``."""
        return self.encode_lines(line.unsqueeze(0))[0]

    def aggregate(
        self, tokens: torch.Tensor, ky_index: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Mix line tokens across ``ky`` into a feature map.

        Args:
            tokens: ``(batch, lines, transforms, coils, 2, nx)`` from ``encode_lines``.
            ky_index: ``(batch, lines)`` int64 ky position of each token.
            mask: ``(batch, ky)`` bool, True where a line was acquired; tokens
                whose ``ky_index`` is not in the mask are ignored.

        Returns:
            ``(batch, out_channels, ny, nx)`` float feature map.
        """
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            return self._aggregate(tokens.float(), ky_index, mask)

    def _aggregate(
        self, tokens: torch.Tensor, ky_index: torch.Tensor | None, mask: torch.Tensor
    ) -> torch.Tensor:
        return self.features_from_mixed(*self.mix_lines(tokens, ky_index, mask), mask)

    def mix_lines(
        self, tokens: torch.Tensor, ky_index: torch.Tensor | None, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear stage across ky: tokens -> mixed maps (real, imag) ``(b, h, c, ny, nx)``.

        Linear in the tokens, so the maps of a slice are the sum over its lines
        of each line's contribution (what a running accumulator can use).
        ``ky_index`` None means token ``l`` sits at ky = l for every l (the batch path).
        """
        mask_f = mask.to(tokens.dtype)
        tr, ti = tokens[..., 0, :], tokens[..., 1, :]  # (b, l, h, c, nx)
        if ky_index is None:
            keep = mask_f
            wr, wi = self.wy[..., 0].float(), self.wy[..., 1].float()  # (h, ny, l)
            eq = "hyl,blhcx->bhcyx"
        else:
            keep = torch.gather(mask_f, 1, ky_index)  # (b, l)
            wy = self.wy[:, :, ky_index].float()  # (h, ny, b, l, 2)
            wr, wi = wy[..., 0], wy[..., 1]
            eq = "hybl,blhcx->bhcyx"
        tr = tr * keep[:, :, None, None, None]
        ti = ti * keep[:, :, None, None, None]
        fr = torch.einsum(eq, wr, tr) - torch.einsum(eq, wi, ti)
        fi = torch.einsum(eq, wr, ti) + torch.einsum(eq, wi, tr)
        return fr, fi

    def raw_features(self, fr: torch.Tensor, fi: torch.Tensor) -> torch.Tensor:
        """Mixed maps -> ``(b, h, per_transform, ny, nx)`` features before normalisation.

        Per coil: real, imag, modulus; then (``coil_magnitude``) the coil-combined
        magnitude, which no coil's background phase changes.
        """
        power = fr * fr + fi * fi
        parts = [torch.stack((fr, fi, torch.sqrt(power + 1e-8)), dim=3).flatten(2, 3)]
        if self.cfg.coil_magnitude:
            parts.append(torch.sqrt(power.sum(dim=2, keepdim=True) + 1e-8))
        return torch.cat(parts, dim=2)

    def features_from_mixed(
        self, fr: torch.Tensor, fi: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Non-linear stage: mixed maps -> normalised, mask-conditioned feature map."""
        b = fr.shape[0]
        feat = self.raw_features(fr, fi).reshape(b, self.out_channels, self.cfg.ny, self.cfg.nx)
        feat = self.norm(feat)
        mask_f = mask.to(feat.dtype)
        frac = mask_f.mean(dim=1, keepdim=True)
        gamma, beta = self.film(torch.cat((mask_f, frac), dim=1)).chunk(2, dim=1)
        return feat * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]

    def forward(self, kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Batch path: zero-filled k-space -> feature map.

        Args:
            kspace: ``(batch, coils, ky, kx)`` complex; lines outside ``mask`` are ignored.
            mask: ``(batch, ky)`` bool.

        Returns:
            ``(batch, out_channels, ny, nx)`` float feature map.
        """
        lines = kspace.permute(0, 2, 1, 3)  # (b, ky, coils, kx)
        tokens = self.encode_lines(lines)
        with torch.autocast(device_type=kspace.device.type, enabled=False):
            # every ky position present: the mixing weights need no gather
            return self._aggregate(tokens.float(), None, mask)


def kx_transform(frontend: KSpaceFrontend) -> torch.Tensor:
    """``(h, kx, nx)`` complex kx transforms of ``frontend`` (``encode_lines`` as a matmul)."""
    wx = frontend.wx.detach().float()
    return torch.complex(wx[..., 0], wx[..., 1]).transpose(-1, -2).contiguous()


def readout_weights(frontend: KSpaceFrontend, kx_operator: torch.Tensor) -> torch.Tensor:
    """``(h, kx_acq, nx)``: an acquisition's ``(kx_model, kx_acq)`` readout map followed by
    the kx transforms, as one operator, so that acquired lines are encoded without first
    being resampled one by one (both steps are linear along kx)."""
    return torch.matmul(kx_operator.T.to(torch.complex64), kx_transform(frontend)).contiguous()


class KyMixAccumulator:
    """Running ky-mix of one buffer's line tokens: the linear part of ``aggregate``.

    ``aggregate`` sums ``wy[:, :, ky_l] * token_l`` over the acquired lines before
    anything non-linear happens, so the sum can grow as each line arrives and only
    ``features_from_mixed`` and the trunk are left after the last one. Coil compression
    and intensity scaling are linear across coils and lines too: tokens of the raw
    coils may be summed here and compressed afterwards (``compressed``).

    Args:
        frontend: the model's frontend (weights are read, never changed).
        n_coils: coils of the tokens that will be added.
    """

    def __init__(self, frontend: KSpaceFrontend, n_coils: int, flush_every: int = 8,
                 readout_weights: torch.Tensor | None = None) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        w = frontend.wy.detach().float()
        self.wy = torch.complex(w[..., 0], w[..., 1])  # (h, ny, n_ky)
        # (h, kx_in, nx): one complex matmul per line is ``encode_lines``' four real einsums
        self.wx_t = kx_transform(frontend) if readout_weights is None else readout_weights
        h, ny, _ = self.wy.shape
        self._sum = torch.zeros(
            h, n_coils, ny, frontend.cfg.nx, dtype=torch.complex64, device=w.device
        )
        # Lines wait here and are folded in ``flush_every`` at a time: one batched product
        # instead of one full-size update per line (the sum is the same; reads flush first).
        self.flush_every = flush_every
        self._lines: list[torch.Tensor] = []
        self._ky: list[int] = []
        self._sign: list[float] = []

    def add_line(self, line: torch.Tensor, ky: int, sign: float = 1.0) -> None:
        """Encode one ``(coils, kx)`` complex64 line (as ``encode_lines``) and fold it in at
        model line ``ky``; ``sign = -1`` takes an earlier line back out."""
        self._lines.append(line)
        self._ky.append(int(ky))
        self._sign.append(float(sign))
        if len(self._lines) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Fold the waiting lines into the sum."""
        if not self._lines:
            return
        self.add_lines(torch.stack(self._lines), self._ky, self._sign)
        self._lines.clear()
        self._ky.clear()
        self._sign.clear()

    def add_lines(self, lines: torch.Tensor, ky: list[int],
                  sign: list[float] | None = None) -> None:
        """Fold ``(n, coils, kx)`` complex64 lines at model lines ``ky`` in one product."""
        h, c, ny, nx = self._sum.shape
        n = int(lines.shape[0])
        if n == 0:
            return
        t = torch.matmul(lines.reshape(n * c, -1), self.wx_t).reshape(h, n, c * nx)  # tokens
        w = self.wy[:, :, ky]  # (h, ny, n)
        if sign is not None and any(s != 1.0 for s in sign):
            w = w * torch.tensor(sign, dtype=torch.float32, device=self.wy.device)
        self._sum.add_(torch.bmm(w, t).reshape(h, ny, c, nx).transpose(1, 2))

    @property
    def sum(self) -> torch.Tensor:
        """``(h, coils, ny, nx)`` complex running ky-mix of every line added so far."""
        self.flush()
        return self._sum

    def compressed(self, matrix: torch.Tensor | None, scale: float) -> torch.Tensor:
        """``(h, v, ny, nx)`` complex sum of the compressed coils ``matrix @ coils``, / scale."""
        total = self.sum
        if matrix is None:
            return total / scale
        h, c, ny, nx = total.shape
        # One batched matmul with the scale folded into the small matrix: a third of the
        # time of the equivalent einsum, which permutes the full-size sum first.
        mixed = torch.matmul(matrix / scale, total.reshape(h, c, ny * nx))
        return mixed.reshape(h, matrix.shape[0], ny, nx)
