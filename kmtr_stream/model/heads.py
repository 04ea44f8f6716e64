"""Subject-level head: phenotypes and disease logits from ED/ES slice latents."""

from __future__ import annotations

import torch
from torch import nn

from kmtr_stream.model.config import ModelConfig

#: Extra per-slice features appended to each latent: soft area of RV, MYO, LV.
N_AREA_FEATURES = 3


def label_areas(labels: torch.Tensor, n_classes: int = 4, scale: float = 10.0) -> torch.Tensor:
    """Fraction of the slice covered by each foreground label, times ``scale``.

    Hard label maps are used both in training (argmax of the logits) and in the
    chain (the labels of each SliceResult), so both see the same features.

    Args:
        labels: ``(n, ny, nx)`` integer label maps.
        n_classes: number of labels including background.
        scale: factor bringing the fractions to O(1) (``ModelConfig.area_scale``).

    Returns:
        ``(n, n_classes - 1)`` float32 scaled area fractions (order RV, MYO, LV).
    """
    onehot = torch.nn.functional.one_hot(labels.long(), n_classes)[..., 1:]
    return onehot.float().mean(dim=(1, 2)) * scale


class SubjectHead(nn.Module):
    """Transformer over the slice latents of the ED and ES phases of one subject."""

    in_mean: torch.Tensor
    in_std: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.latent_dim
        # Per-feature standardisation of the inputs (set by ``training.head_refit``):
        # between-subject differences are small next to the shared part of the latents.
        self.register_buffer("in_mean", torch.zeros(d + N_AREA_FEATURES))
        self.register_buffer("in_std", torch.ones(d + N_AREA_FEATURES))
        self.inp = nn.Linear(d + N_AREA_FEATURES, d)
        self.slice_pos = nn.Sequential(nn.Linear(2, d), nn.GELU(), nn.Linear(d, d))
        self.phase_emb = nn.Embedding(2, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        layer = nn.TransformerEncoderLayer(
            d,
            cfg.subject_heads,
            dim_feedforward=2 * d,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.subject_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.phenotypes = nn.Linear(d, cfg.n_phenotypes)
        self.diagnosis = nn.Linear(d, cfg.n_classes_dx)

    def forward(
        self,
        latents: torch.Tensor,
        areas: torch.Tensor,
        slice_valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict subject outputs.

        Args:
            latents: ``(batch, 2, slices, latent_dim)``; phase axis is (ED, ES).
            areas: ``(batch, 2, slices, 3)`` from ``label_areas``.
            slice_valid: ``(batch, slices)`` bool, False for padded slices; None = all valid.

        Returns:
            ``(batch, n_phenotypes)`` standardised phenotypes and ``(batch, n_classes_dx)`` logits.
        """
        b, p, s, _ = latents.shape
        feats = torch.cat((latents, areas.to(latents.dtype)), dim=-1)
        x = self.inp((feats - self.in_mean) / self.in_std)
        if slice_valid is None:
            slice_valid = torch.ones(b, s, dtype=torch.bool, device=latents.device)
        n_valid = slice_valid.sum(dim=1, keepdim=True).clamp(min=1)
        idx = torch.arange(s, device=latents.device, dtype=x.dtype)[None, :]
        rel = idx / (n_valid.to(x.dtype) - 1).clamp(min=1)
        pos = self.slice_pos(torch.stack((rel, n_valid.to(x.dtype).expand(-1, s) / 10.0), dim=-1))
        x = x + pos[:, None] + self.phase_emb.weight[None, :p, None, :]
        x = x.reshape(b, p * s, -1)
        x = torch.cat((self.cls.expand(b, -1, -1), x), dim=1)
        pad = torch.cat(
            (
                torch.zeros(b, 1, dtype=torch.bool, device=x.device),
                (~slice_valid)[:, None].expand(b, p, s).reshape(b, -1),
            ),
            dim=1,
        )
        h = self.norm(self.encoder(x, src_key_padding_mask=pad)[:, 0])
        return self.phenotypes(h), self.diagnosis(h)
