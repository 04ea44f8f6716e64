"""U-Net trunk shared by the k-space and image-domain models: seg logits + slice latent."""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import nn
from torch.nn import functional as F

from kmtr_stream.model.config import PADDING_MODES


def _act(name: str) -> nn.Module:
    return nn.GELU() if name == "gelu" else nn.ReLU(inplace=True)


def _norm(channels: int, groups: int = 4) -> nn.GroupNorm:
    return nn.GroupNorm(groups if channels % groups == 0 else 1, channels)


def seg_labels(logits: torch.Tensor) -> torch.Tensor:
    """``(n, classes, y, x)`` logits -> ``(n, y, x)`` int64 labels (first maximum on ties).

    Same result as ``logits.argmax(dim=1)``; on CPU the class axis is moved last first,
    because torch's reduction over a short non-innermost axis is ~7x slower (0.5 ms of
    a 64 x 64 slice's post-last-line time, ``benchmarks/bench_trunk_ops.py``).
    """
    return logits.permute(0, 2, 3, 1).contiguous().argmax(dim=-1)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling; exactly ``F.interpolate(x, scale_factor=2)``, faster."""
    n, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


_onednn_conv = torch.ops.aten.mkldnn_convolution

#: A padding mode of the trunk's 3x3 convolutions, one of ``PADDING_MODES``.
Padding = Literal["zeros", "circular"]


def padding_mode(name: str) -> Padding:
    """``name`` as a trunk padding mode (ValueError for any other)."""
    if name not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, got {name!r}")
    return cast(Padding, name)


class DilatedConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose inference on CPU goes through oneDNN.

    For a batch of one, torch sends a small dilated convolution (here 32 channels at
    16 x 16) to its im2col fallback, 2-3x slower than oneDNN's kernel; outside autograd
    this layer calls oneDNN directly. Same weights and state dict as ``nn.Conv2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = self.padding
        if (isinstance(padding, str) or self.padding_mode not in ("zeros", "circular")
                or x.device.type != "cpu"
                or x.dtype != torch.float32 or torch.is_grad_enabled()
                or not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled):
            return super().forward(x)
        if self.padding_mode == "circular":  # wrap explicitly, then convolve unpadded
            py, px = padding
            x, padding = F.pad(x, (px, px, py, py), mode="circular"), (0, 0)
        return _onednn_conv(
            x.contiguous(), self.weight, self.bias, list(padding), list(self.stride),
            list(self.dilation), self.groups,
        )


def _block(cin: int, cout: int, activation: str = "relu", groups: int = 4,
           padding: Padding = "zeros") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, padding_mode=padding),
        _norm(cout, groups),
        _act(activation),
        nn.Conv2d(cout, cout, 3, padding=1, padding_mode=padding),
        _norm(cout, groups),
        _act(activation),
    )


class ContextBlock(nn.Module):
    """Residual stack of dilated 3x3 convolutions at the coarsest level.

    The plain three-level trunk reaches 22 px either way, less than the distance
    between the aliased copies of an equispaced acquisition (FOV / R: 32 px at 2x,
    16 px at 4x on the 64-px grid, where its far edge sees little), so it cannot
    see a structure and its alias together. Dilations at the coarsest stride widen it
    cheaply (dilation 8 at stride 4 spans +-32 px per layer). The last 1x1
    convolution starts at zero: a trunk grown by this block computes exactly what
    it did before, so it can continue from weights trained without it.
    """

    def __init__(
        self, channels: int, dilations: tuple[int, ...], activation: str, groups: int = 4,
        padding: Padding = "zeros",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for d in dilations:
            layers += [
                DilatedConv2d(channels, channels, 3, padding=d, dilation=d, padding_mode=padding),
                _norm(channels, groups),
                _act(activation),
            ]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]  # built with a bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.out(self.body(x))


class UNetTrunk(nn.Module):
    """Small U-Net: feature map -> segmentation logits and a pooled slice latent.

    ``context_dilations`` adds a :class:`ContextBlock` after the coarsest level
    (its output feeds both the decoder and the latent). ``norm_groups`` is the
    GroupNorm group count of every level (a level whose channels it does not divide
    uses one group). ``padding`` is the 3x3 convolutions' padding mode ("zeros" or
    "circular", see ``ModelConfig.padding``).
    """

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, ...],
        latent_dim: int,
        n_classes: int,
        with_decoder: bool = True,
        activation: str = "relu",
        context_dilations: tuple[int, ...] = (),
        norm_groups: int = 4,
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        mode = padding_mode(padding)
        self.down = nn.ModuleList()
        cin = in_channels
        for c in channels:
            self.down.append(_block(cin, c, activation, norm_groups, mode))
            cin = c
        self.context = (
            ContextBlock(channels[-1], context_dilations, activation, norm_groups, mode)
            if context_dilations else None
        )
        self.up = nn.ModuleList()
        if with_decoder:
            for c_skip, c_low in zip(reversed(channels[:-1]), reversed(channels[1:]), strict=True):
                self.up.append(_block(c_low + c_skip, c_skip, activation, norm_groups, mode))
        self.seg = nn.Conv2d(channels[0], n_classes, 1) if with_decoder else None
        self.latent = nn.Sequential(
            nn.Linear(channels[-1] * 2, latent_dim), nn.LayerNorm(latent_dim)
        )

    def encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Down path. Returns the skip features per level and the ``(batch, latent_dim)`` latent."""
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        if self.context is not None:
            x = skips[-1] = self.context(x)
        pooled = torch.cat((x.mean(dim=(2, 3)), x.amax(dim=(2, 3))), dim=1)
        return skips, self.latent(pooled)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the trunk.

        Args:
            x: ``(batch, in_channels, ny, nx)`` feature map.

        Returns:
            ``(batch, n_classes, ny, nx)`` segmentation logits and ``(batch, latent_dim)`` latent.
        """
        if self.seg is None:
            raise RuntimeError("trunk built without decoder has no segmentation output")
        skips, latent = self.encode(x)
        y = skips[-1]
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            y = upsample2x(y)
            y = block(torch.cat((y, skip), dim=1))
        return self.seg(y), latent
