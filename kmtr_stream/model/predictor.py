"""Subject-level predictions from the per-slice results of a measurement."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from kmtr_stream.cardiac import choose_ed_es
from kmtr_stream.conventions import CLASSES, PHENOTYPES
from kmtr_stream.errors import KmtrError
from kmtr_stream.messages import SliceResult
from kmtr_stream.model.calibration import softmax
from kmtr_stream.model.heads import label_areas
from kmtr_stream.model.io import LoadedModel, load_model
from kmtr_stream.model.ood import (
    LatentStats,
    combined_score,
    phenotype_disagreement,
    slice_scores,
    subject_exposure,
)


class SubjectPredictor:
    """Phenotypes and diagnosis of one measurement from its SliceResults."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        ood = loaded.meta.get("ood")
        #: Training-latent statistics, or None for weights without an OOD calibration.
        self.ood = LatentStats.from_json(ood) if ood else None

    def slice_ood(self, latent: np.ndarray) -> float | None:
        """Out-of-distribution score of one slice latent (None without a calibration)."""
        if self.ood is None:
            return None
        return float(slice_scores(self.ood, np.asarray(latent, np.float32)))

    def ood_summary(
        self,
        latents: np.ndarray,
        phen_net: np.ndarray | None = None,
        phen_seg: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> dict[str, Any] | None:
        """``{"score", "threshold", "flagged", "latent_score"[, "phenotype_disagreement",
        "cavity_exposure"]}``.

        ``latents``: ``(..., d)`` of one subject; ``phen_net`` and ``phen_seg``: its
        ``(9,)`` regressed and segmentation-derived phenotypes (physical units);
        ``labels``: its ``(phases, slices, ny, nx)`` ED and ES label maps.
        """
        if self.ood is None:
            return None
        latent = float(slice_scores(self.ood, latents).mean())
        score = float(combined_score(self.ood, latent, phen_net, phen_seg, labels))
        out: dict[str, Any] = {
            "score": score,
            "threshold": self.ood.threshold,
            "flagged": bool(score > self.ood.threshold),
            "latent_score": latent,
        }
        if self.ood.phen_scale is not None and phen_net is not None and phen_seg is not None:
            out["phenotype_disagreement"] = float(
                phenotype_disagreement(phen_net, phen_seg, self.ood.phen_scale)
            )
        if self.ood.shape_ref is not None and labels is not None:
            out["cavity_exposure"] = float(subject_exposure(labels))
        return out

    def predict(
        self,
        results: list[SliceResult],
        ed_phase: int = 0,
        es_phase: int | None = None,
        seg_phenotypes: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """Run the subject head on the ED and ES slice latents.

        Args:
            results: final SliceResults of one measurement (any order; only
                the ED and ES phases are used, slices present in both).
            ed_phase: end-diastolic phase.
            es_phase: end-systolic phase; None = chosen by ``cardiac.choose_ed_es``.
            seg_phenotypes: the subject's phenotypes measured on its segmentation,
                for the consistency part of the out-of-distribution score.

        Returns:
            ``{"phenotypes": {name: value}, "diagnosis": {"class": str,
            "probabilities": {class: p}}, "ed_phase": int, "es_phase": int,
            "n_slices": int, "ood": {"score", "threshold", "flagged"} or None}``.
        """
        phases = sorted({int(r.phase) for r in results})
        ed, es = choose_ed_es(results, ed_phase) if es_phase is None else (ed_phase, es_phase)
        if ed not in phases or es == ed or es not in phases:
            raise KmtrError(
                f"subject prediction needs ED phase {ed} and another phase, got phases {phases}"
            )
        by_key = {(r.phase, r.slice): r for r in results if r.phase in (ed, es)}
        slices = sorted({s for (p, s) in by_key if p == ed} & {s for (p, s) in by_key if p == es})
        if not slices:
            raise KmtrError(f"no slice has results in both ED phase {ed} and ES phase {es}")
        net, dev = self.loaded.net, self.loaded.device
        latents = np.stack(
            [[np.asarray(by_key[(p, s)].latent, np.float32) for s in slices] for p in (ed, es)]
        )
        labels = np.stack(
            [[np.asarray(by_key[(p, s)].labels, np.int64) for s in slices] for p in (ed, es)]
        )
        n_cls = net.cfg.n_classes_seg
        with torch.no_grad():
            lat = torch.from_numpy(latents)[None].to(dev)
            flat = torch.from_numpy(labels.reshape(-1, *labels.shape[-2:]))
            areas = label_areas(flat, n_cls, net.cfg.area_scale)
            areas = areas.reshape(1, 2, len(slices), -1).to(dev)
            ph, lg = net.subject_head(lat, areas)
        phen = ph[0].float().cpu().numpy() * self.loaded.phen_std + self.loaded.phen_mean
        probs = softmax(lg.float().cpu().numpy(), self.loaded.temperature)[0]
        return {
            "phenotypes": {name: float(v) for name, v in zip(PHENOTYPES, phen, strict=True)},
            "diagnosis": {
                "class": CLASSES[int(probs.argmax())],
                "probabilities": {c: float(p) for c, p in zip(CLASSES, probs, strict=True)},
            },
            "ed_phase": ed,
            "es_phase": es,
            "n_slices": len(slices),
            "ood": self.ood_summary(
                latents,
                phen,
                None if seg_phenotypes is None
                else np.asarray([seg_phenotypes[k] for k in PHENOTYPES], np.float64),
                labels,
            ),
        }


@functools.lru_cache(maxsize=8)
def load_subject_predictor(name: str = "default") -> SubjectPredictor:
    """Predictor over the (shared, cached) model ``name``."""
    return SubjectPredictor(load_model(name))
