"""Training losses: segmentation, latent alignment (InfoNCE) and subject tasks."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice over the foreground classes.

    Args:
        logits: ``(n, classes, ny, nx)``.
        labels: ``(n, ny, nx)`` int64.

    Returns:
        Scalar loss.
    """
    logits = logits.float()
    ce = F.cross_entropy(logits, labels)
    prob = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(prob.dtype)
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    denom = prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return ce + (1.0 - dice).mean()


def info_nce(z_k: torch.Tensor, z_i: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between k-space and image latents, subjects as negatives.

    For every (phase, slice) position the ``b`` subjects of the batch form the
    contrast set: each k-space latent must pick its own subject's image latent.

    Args:
        z_k: ``(b, phases, slices, d)`` k-space latents.
        z_i: ``(b, phases, slices, d)`` image latents.
        temperature: softmax temperature.

    Returns:
        Scalar loss (``log b`` for unrelated latents, 0 when perfectly aligned).
    """
    b = z_k.shape[0]
    k = F.normalize(z_k.float().flatten(1, 2).transpose(0, 1), dim=-1)  # (ps, b, d)
    i = F.normalize(z_i.float().flatten(1, 2).transpose(0, 1), dim=-1)
    logits = torch.einsum("pbd,pcd->pbc", k, i) / temperature
    target = torch.arange(b, device=z_k.device).expand(logits.shape[0], -1)
    loss_k = F.cross_entropy(logits.reshape(-1, b), target.reshape(-1))
    loss_i = F.cross_entropy(logits.transpose(1, 2).reshape(-1, b), target.reshape(-1))
    return 0.5 * (loss_k + loss_i)


def phenotype_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 on standardised phenotypes ``(b, 9)``."""
    return F.smooth_l1_loss(pred.float(), target, beta=0.5)


def diagnosis_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(b, classes)`` logits."""
    return F.cross_entropy(logits.float(), target)
