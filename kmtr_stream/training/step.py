"""One forward pass of training as a module, so DDP sees every parameter in ``forward``."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from kmtr_stream.model.networks import ImageModel, KMTRModel, SliceModel, normalise_image
from kmtr_stream.model.recon import zero_filled_rss
from kmtr_stream.training.config import TrainSettings
from kmtr_stream.training.losses import diagnosis_loss, info_nce, phenotype_loss, segmentation_loss


def slice_inputs(
    model: SliceModel,
    kspace: torch.Tensor,
    mask: torch.Tensor,
    image: torch.Tensor,
    image_input: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slice (logits, latents) of ``model`` for flattened slices.

    Args:
        model: a KMTRModel or ImageModel.
        kspace: ``(n, coils, ky, kx)`` complex.
        mask: ``(n, ky)`` bool.
        image: ``(n, ny, nx)`` fully sampled magnitude (used by "full" image models).
        image_input: "zero_filled" or "full" (image models only).
    """
    if isinstance(model, KMTRModel):
        return model(kspace, mask)
    x = image if image_input == "full" else zero_filled_rss(kspace, mask)
    return model(x)


class TrainStep(nn.Module):
    """Computes all losses of one batch; wraps the model for DDP."""

    def __init__(self, model: SliceModel, settings: TrainSettings) -> None:
        super().__init__()
        self.model = model
        self.settings = settings

    def _tasks(
        self,
        model: SliceModel,
        seg: torch.Tensor,
        lat: torch.Tensor,
        shape: tuple[int, int, int],
        labels: torch.Tensor,
        phen: torch.Tensor,
        dx: torch.Tensor,
        prefix: str,
    ) -> dict[str, torch.Tensor]:
        b, p, s = shape
        ph, lg = model.subject(lat.reshape(b, p, s, -1), seg)
        st = self.settings
        losses = {
            f"{prefix}seg": segmentation_loss(seg, labels.reshape(-1, *labels.shape[-2:])),
            f"{prefix}phen": phenotype_loss(ph, phen),
            f"{prefix}dx": diagnosis_loss(lg, dx),
        }
        losses[f"{prefix}total"] = (
            st.w_seg * losses[f"{prefix}seg"]
            + st.w_phen * losses[f"{prefix}phen"]
            + st.w_dx * losses[f"{prefix}dx"]
        )
        return losses

    def forward(
        self,
        kspace: torch.Tensor,
        mask: torch.Tensor,
        image: torch.Tensor,
        labels: torch.Tensor,
        phen: torch.Tensor,
        dx: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Losses of a batch (tensors as in ``training.data.Batch``); "loss" is the objective."""
        b, p, s = mask.shape[:3]
        k = kspace.reshape(b * p * s, *kspace.shape[-3:])
        m = mask.reshape(b * p * s, -1)
        img = image.reshape(b * p * s, *image.shape[-2:])
        branch = self.model.image_branch if isinstance(self.model, KMTRModel) else None
        probe: torch.Tensor | None = None
        if isinstance(self.model, KMTRModel) and isinstance(branch, ImageModel):
            seg, lat, probe = self.model.forward_with_probe(k, m)
        else:
            seg, lat = slice_inputs(self.model, k, m, img, self.settings.image_input)
        out = self._tasks(self.model, seg, lat, (b, p, s), labels, phen, dx, "")
        loss = out["total"]
        if probe is not None:
            out["dense_align"] = F.mse_loss(probe.float(), normalise_image(img))
            loss = loss + self.settings.w_dense_align * out["dense_align"]
        if isinstance(branch, ImageModel):
            frozen = self.settings.freeze_image_branch
            with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
                iseg, ilat = branch(img)
            if not frozen:
                out.update(self._tasks(branch, iseg, ilat, (b, p, s), labels, phen, dx, "img_"))
                loss = loss + out["img_total"]
            out["align"] = info_nce(
                lat.reshape(b, p, s, -1), ilat.reshape(b, p, s, -1), self.settings.align_temperature
            )
            loss = loss + self.settings.w_align * out["align"]
        out["loss"] = loss
        return out
