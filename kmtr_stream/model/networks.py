"""The k-MTR model (k-space branch) and the image-domain model of the baselines."""

from __future__ import annotations

import torch
from torch import nn

from kmtr_stream.model.config import ModelConfig
from kmtr_stream.model.heads import SubjectHead, label_areas
from kmtr_stream.model.kspace_encoder import KSpaceFrontend
from kmtr_stream.model.trunk import UNetTrunk, seg_labels


def normalise_image(image: torch.Tensor) -> torch.Tensor:
    """Scale each ``(n, ny, nx)`` magnitude image to unit mean (contrast-invariant input)."""
    scale = image.flatten(1).mean(dim=1).clamp(min=1e-6)
    return image / scale[:, None, None]


class SliceModel(nn.Module):
    """Common interface: per-slice trunk outputs plus the subject head."""

    trunk: UNetTrunk
    subject_head: SubjectHead
    cfg: ModelConfig
    kind: str

    def subject(
        self,
        latents: torch.Tensor,
        seg_logits: torch.Tensor,
        slice_valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Subject outputs (standardised phenotypes, disease logits).

        Args:
            latents: ``(batch, 2, slices, d)`` slice latents, phases (ED, ES).
            seg_logits: ``(batch * 2 * slices, classes, ny, nx)`` logits of the same slices.
            slice_valid: ``(batch, slices)`` bool or None.
        """
        b, p, s, _ = latents.shape
        areas = label_areas(seg_labels(seg_logits), seg_logits.shape[1], self.cfg.area_scale)
        areas = areas.reshape(b, p, s, -1)
        return self.subject_head(latents, areas, slice_valid)


class ImageModel(SliceModel):
    """Image-domain network with the same trunk and heads (recon-then-analyze, upper bound)."""

    kind = "image"

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.trunk = UNetTrunk(
            1,
            cfg.channels,
            cfg.latent_dim,
            cfg.n_classes_seg,
            activation=cfg.activation,
            context_dilations=cfg.context_dilations,
            norm_groups=cfg.norm_groups,
            padding=cfg.padding,
        )
        self.subject_head = SubjectHead(cfg)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(n, ny, nx)`` magnitudes -> logits ``(n, classes, ny, nx)``, latents ``(n, d)``."""
        return self.trunk(normalise_image(image)[:, None])


class KMTRModel(SliceModel):
    """k-space frontend -> U-Net trunk -> (segmentation, latent) -> subject head.

    Args:
        cfg: architecture sizes.
        with_image_branch: build the training-only image branch (an
            ``ImageModel`` on fully sampled images) that the latent alignment
            loss pulls the k-space latents towards.
    """

    kind = "kmtr"

    def __init__(self, cfg: ModelConfig, with_image_branch: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = KSpaceFrontend(cfg)
        self.trunk = UNetTrunk(
            self.frontend.out_channels,
            cfg.channels,
            cfg.latent_dim,
            cfg.n_classes_seg,
            activation=cfg.activation,
            context_dilations=cfg.context_dilations,
            norm_groups=cfg.norm_groups,
            padding=cfg.padding,
        )
        self.subject_head = SubjectHead(cfg)
        self.image_branch = ImageModel(cfg) if with_image_branch else None
        # Training-only probe of the dense alignment loss (frontend features -> image). It is
        # not exported, so every warm start gets a new one: zero weights, so that a random
        # probe's error (4.2 against 0.5 once fitted) does not push a trained frontend while
        # the probe is learning; the probe's own gradient is not zero.
        self.probe: nn.Conv2d | None = None
        if with_image_branch:
            self.probe = nn.Conv2d(self.frontend.out_channels, 1, 1)
            for p in self.probe.parameters():
                nn.init.zeros_(p)

    def forward(
        self, kspace: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch path.

        Args:
            kspace: ``(n, coils, ky, kx)`` complex k-space (unacquired lines ignored).
            mask: ``(n, ky)`` bool.

        Returns:
            ``(n, classes, ny, nx)`` segmentation logits and ``(n, latent_dim)`` latents.
        """
        return self.trunk(self.frontend(kspace, mask))

    def forward_with_probe(
        self, kspace: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training path: as ``forward`` plus the probe's ``(n, ny, nx)`` image estimate."""
        if self.probe is None:
            raise RuntimeError("model built without the training-only image branch and probe")
        feat = self.frontend(kspace, mask)
        seg, lat = self.trunk(feat)
        return seg, lat, self.probe(feat)[:, 0]

    def encode_lines(self, lines: torch.Tensor) -> torch.Tensor:
        """Streaming stage 1: ``(..., coils, kx)`` complex lines -> line tokens."""
        return self.frontend.encode_lines(lines)

    def encode_line(self, line: torch.Tensor) -> torch.Tensor:
        """Streaming stage 1 for one ``(coils, kx)`` line."""
        return self.frontend.encode_line(line)

    def aggregate(
        self,
        tokens: torch.Tensor,
        ky_index: torch.Tensor,
        mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Streaming stage 2: tokens ``(n, lines, ...)`` at ``ky_index`` -> (logits, latents)."""
        return self.trunk(self.frontend.aggregate(tokens, ky_index, mask))
