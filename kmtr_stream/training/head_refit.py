"""Second training stage: refit the subject head on frozen slice latents.

End-to-end training spends its few CPU steps mostly on the segmentation; the
subject head then sees latents whose between-subject differences are small.
This stage extracts (latent, label-area) features of training subjects once,
under the training mask distribution, standardises every feature over the
subjects, and trains a freshly initialised subject head on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from kmtr_stream.model.heads import SubjectHead, label_areas
from kmtr_stream.model.networks import SliceModel
from kmtr_stream.model.trunk import seg_labels
from kmtr_stream.training.config import TrainSettings
from kmtr_stream.training.data import CachedCohort, make_batch
from kmtr_stream.training.step import slice_inputs


@torch.no_grad()
def subject_features(
    net: SliceModel,
    cohort: CachedCohort,
    indices: np.ndarray,
    settings: TrainSettings,
    image_input: str,
    rng: np.random.Generator,
    phen_mean: np.ndarray,
    phen_std: np.ndarray,
    device: torch.device,
    batch_size: int = 8,
) -> dict[str, torch.Tensor]:
    """Frozen features of ``indices``: latents ``(n, 2, s, d)``, areas ``(n, 2, s, 3)``, targets."""
    net.eval()
    lats, areas, phens, dxs = [], [], [], []
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        b = make_batch(cohort, idx, rng, settings, phen_mean, phen_std).to(device)
        n, p, s = b.mask.shape[:3]
        seg, lat = slice_inputs(
            net,
            b.kspace.reshape(n * p * s, *b.kspace.shape[-3:]),
            b.mask.reshape(n * p * s, -1),
            b.image.reshape(n * p * s, *b.image.shape[-2:]),
            image_input,
        )
        lats.append(lat.float().reshape(n, p, s, -1).cpu())
        area = label_areas(seg_labels(seg), seg.shape[1], net.cfg.area_scale)
        areas.append(area.reshape(n, p, s, -1).cpu())
        phens.append(b.phenotypes.cpu())
        dxs.append(b.diagnosis.cpu())
    return {
        "latents": torch.cat(lats),
        "areas": torch.cat(areas),
        "phen": torch.cat(phens),
        "dx": torch.cat(dxs),
    }


def refit_subject_head(
    net: SliceModel,
    feats: dict[str, torch.Tensor],
    epochs: int,
    seed: int,
    lr: float = 2e-3,
    w_dx: float = 1.0,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Replace ``net.subject_head`` by a new head trained on ``feats`` (from ``subject_features``).

    Returns:
        Final training losses of the refit.
    """
    torch.manual_seed(seed)
    head = SubjectHead(net.cfg)
    x = torch.cat((feats["latents"], feats["areas"]), dim=-1)
    head.in_mean.copy_(x.reshape(-1, x.shape[-1]).mean(0))
    head.in_std.copy_(x.reshape(-1, x.shape[-1]).std(0).clamp(min=1e-4))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-2)
    n = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    last: dict[str, float] = {}
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            i = order[start : start + batch_size]
            ph, lg = head(feats["latents"][i], feats["areas"][i])
            lp = F.smooth_l1_loss(ph, feats["phen"][i], beta=0.5)
            ld = F.cross_entropy(lg, feats["dx"][i])
            loss = lp + w_dx * ld
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            last = {"refit_phen": float(lp.detach()), "refit_dx": float(ld.detach())}
    device = next(net.parameters()).device
    net.subject_head = head.to(device)
    return last
