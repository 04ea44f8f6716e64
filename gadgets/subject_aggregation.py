"""Subject aggregation gadget: per-slice results out at once, one subject result at the end.

Every ``SliceResult`` becomes a wire ``Result(kind="slice")`` with its
segmented areas. Final results are kept per (slice, phase); once the
measurement is complete (a result flagged ``last_in_measurement``, or all
``n_slices x n_phases`` present) or at end of stream, one
``Result(kind="subject")`` carries the phenotypes computed from the
segmentation, ED/ES phases, the (slice, phase) pairs without a result and,
when a subject predictor is configured, the network's phenotypes and
diagnosis. ED and ES are chosen once (``kmtr_stream.cardiac``) and used for
both the segmentation's phenotypes and the network's, so one subject result
never mixes phases.

The label image of each slice (which the inference gadget yields just
before its ``SliceResult``) is held until that result arrives, then goes on
with the slice's areas added to its meta attributes and, when this result
completes the subject, the subject's phenotypes, diagnosis and class
probabilities too (``kmtr_stream.label_images.subject_meta``), so MRD clients
that store only images still store the results. Nothing waits on later
data: an image is released at its own result, at the next image, or at
end of stream. A subject result that only the end of stream completes
(slices missing) has no image left to ride on and goes out on its own.

Validation (``kmtr_stream.validation``): each slice result carries its
``flags``; a slice refused under strict validation or by a resource limit
(``SliceRefused``, its causes the validation causes or the limit's name) counts
towards completing the measurement but has no result. The subject result says
which pairs were ``refused``, how many readouts failed each check
(``data_faults``), every cause that affects it (``flags``: those of its slices,
the refusals, every cause a readout of the stream failed, ``incomplete``
when pairs are missing) and ``flagged`` when there is any. When every slice was refused there
is no subject result, but an ERROR saying so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import ismrmrd
import numpy as np

from kmtr_stream.cardiac import (
    areas_mm2,
    choose_ed_es,
    phenotypes_from_labels,
    spacing_from_offsets,
)
from kmtr_stream.chain.gadget import ChainContext, Gadget, param
from kmtr_stream.chain.registry import register
from kmtr_stream.conventions import PHENOTYPE_UNITS
from kmtr_stream.errors import ConfigError
from kmtr_stream.label_images import add_meta, slice_meta, subject_meta
from kmtr_stream.messages import DataFault, ErrorReport, Result, SliceRefused, SliceResult
from kmtr_stream.validation import INCOMPLETE

#: Most (slice, phase) pairs a subject result lists under ``missing`` (``n_missing``
#: counts them all): a header whose limits the data never fill must not bloat it.
MAX_LISTED_PAIRS = 256


class SubjectPredictor(Protocol):
    """What ``kmtr_stream.model.load_subject_predictor`` returns."""

    def predict(
        self, results: list[SliceResult], ed_phase: int = 0, es_phase: int | None = None,
        seg_phenotypes: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """``{"phenotypes": {...}, "diagnosis": {"class": str, "probabilities": {...}}}``.

        May add ``"ood": {"score", "threshold", "flagged"}``.
        """
        ...


def slice_body(r: SliceResult) -> dict[str, Any]:
    """Body of the ``Result(kind="slice")`` of one slice result."""
    return {
        "slice": int(r.slice),
        "phase": int(r.phase),
        "repetition": int(r.repetition),
        "lines_used": int(r.lines_used),
        "final": bool(r.final),
        "areas_mm2": areas_mm2(r.labels, r.voxel_size_mm),
        "timings_ms": {str(k): float(v) for k, v in r.timings_ms.items()},
        "flags": [str(f) for f in r.flags],
    }


def subject_phases(
    results: dict[tuple[int, int], SliceResult], n_slices: int, n_phases: int, ed_phase: int,
) -> tuple[int, int]:
    """``(ED, ES)`` of final results keyed by (slice, phase) (``cardiac.choose_ed_es``).

    ED is ``ed_phase`` (within the measurement's phases); ES is the other phase
    with a result of smallest segmented LV cavity.
    """
    ny_nx = next(iter(results.values())).labels.shape
    inside = [
        r for (s, p), r in results.items()
        if 0 <= s < n_slices and 0 <= p < n_phases and r.labels.shape == ny_nx
    ]
    return choose_ed_es(inside, min(max(ed_phase, 0), n_phases - 1))


def subject_voxel(
    results: dict[tuple[int, int], SliceResult], voxel: tuple[float, float, float],
) -> tuple[tuple[float, float, float], str]:
    """Voxel size with dz from the slices' positions where they give it.

    Returns the voxel and where dz came from: "positions" (the acquisitions'
    slice positions), else "header" (the header's value as the slice buffer
    resolved it: its parameter, the header's slice_spacing_mm or the slice
    thickness).
    """
    offsets: dict[int, float] = {}
    for (s, _), r in results.items():
        if r.slice_offset_mm is not None:
            offsets.setdefault(s, r.slice_offset_mm)
    spacing = spacing_from_offsets(offsets)
    if spacing is None:
        return voxel, "header"
    return (voxel[0], voxel[1], spacing), "positions"


def subject_body(
    results: dict[tuple[int, int], SliceResult], n_slices: int, n_phases: int, ed_phase: int,
    es_phase: int | None = None, refused: frozenset[tuple[int, int]] = frozenset(),
) -> dict[str, Any]:
    """Segmentation-derived subject summary from final results keyed by (slice, phase).

    ED is ``ed_phase``; ES is ``es_phase`` or, when None, chosen by
    ``subject_phases``. Pairs without a result count as empty label maps; those
    not in ``refused`` are ``missing`` (the first ``MAX_LISTED_PAIRS`` listed,
    ``n_missing`` all of them).
    """
    first = next(iter(results.values()))
    ny, nx = first.labels.shape
    voxel, spacing_source = subject_voxel(results, first.voxel_size_mm)
    if es_phase is None:
        ed, es = subject_phases(results, n_slices, n_phases, ed_phase)
    else:
        ed, es = ed_phase, es_phase
    # Only ED and ES enter the phenotypes: two phases of labels, however many the header has.
    phases = [ed] if es == ed else [ed, es]
    labels = np.zeros((len(phases), n_slices, ny, nx), dtype=np.int16)
    for (s, p), r in results.items():
        if 0 <= s < n_slices and p in phases and r.labels.shape == (ny, nx):
            labels[phases.index(p), s] = r.labels
    phen = phenotypes_from_labels(labels, voxel, ed_phase=0, es_phase=len(phases) - 1)
    in_grid = sum(1 for s, p in results if 0 <= s < n_slices and 0 <= p < n_phases)
    n_refused = sum(1 for s, p in refused if 0 <= s < n_slices and 0 <= p < n_phases
                    and (s, p) not in results)
    n_missing = n_slices * n_phases - in_grid - n_refused
    missing: list[list[int]] = []
    for p in range(n_phases):  # stops after MAX_LISTED_PAIRS: never walks a huge grid
        for s in range(n_slices):
            if len(missing) >= MAX_LISTED_PAIRS:
                break
            if (s, p) not in results and (s, p) not in refused:
                missing.append([s, p])
        if len(missing) >= MAX_LISTED_PAIRS:
            break
    return {
        "n_slices": n_slices,
        "n_phases": n_phases,
        "ed_phase": ed,
        "es_phase": es,
        "phenotypes_from_segmentation": {k: float(v) for k, v in phen.items()},
        "phenotype_units": dict(PHENOTYPE_UNITS),
        "slice_spacing_mm": float(voxel[2]),
        "slice_spacing_source": spacing_source,
        "missing": missing,
        "n_missing": n_missing,
    }


@register("subject_aggregation")
class SubjectAggregationGadget(Gadget):
    """Turns ``SliceResult``s into slice and subject ``Result`` messages."""

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``subject_aggregation``."""

        ed_phase: int = param(0, min=0, max=1023, doc="end-diastolic cardiac phase index")
        model: str = param(
            "", doc="subject predictor for phenotypes and diagnosis; empty = none",
        )

    handles = (SliceResult, ismrmrd.Image, SliceRefused, DataFault)

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        self.final: dict[tuple[int, int], SliceResult] = {}
        #: The latest image, waiting for its SliceResult (see module doc).
        self._held: ismrmrd.Image | None = None
        self.n_slices = 0
        self.n_phases = 0
        self.subject_emitted = False
        #: Pairs refused by strict validation, with their causes.
        self.refused: dict[tuple[int, int], tuple[str, ...]] = {}
        #: Readouts that failed validation, per cause; causes that affect every slice.
        self.data_faults: dict[str, int] = {}
        self.stream_flags: set[str] = set()
        #: Object with ``predict(results) -> dict``; set from ``model`` or directly.
        self.predictor: SubjectPredictor | None = None
        if params.model:
            self.predictor = self._load(params.model)

    def _load(self, name: str) -> SubjectPredictor:
        try:
            from kmtr_stream.model import load_subject_predictor
        except ImportError as exc:
            raise ConfigError(
                f"gadget {self.id!r}: model {name!r} set but kmtr_stream.model has no "
                f"load_subject_predictor ({exc})"
            ) from exc
        try:
            predictor: SubjectPredictor = load_subject_predictor(name)
        except Exception as exc:
            raise ConfigError(f"gadget {self.id!r}: cannot load model {name!r}: {exc}") from exc
        return predictor

    def _subject(self) -> Result | ErrorReport:
        self.subject_emitted = True
        if not self.final:
            causes = sorted({c for cs in self.refused.values() for c in cs})
            text = (f"no subject result: all {len(self.refused)} slices that arrived were "
                    f"refused ({', '.join(causes)})")
            return self.data_error(
                text, {"refused_pairs": sorted([s, p] for s, p in self.refused),
                       "causes": causes}
            )
        # One ED/ES choice for the segmentation's phenotypes and the network's alike.
        ed, es = subject_phases(
            self.final, self.n_slices, self.n_phases, int(self.params.ed_phase)
        )
        body = subject_body(self.final, self.n_slices, self.n_phases, ed, es,
                            refused=frozenset(self.refused))
        self._validation_fields(body)
        if self.predictor is not None:
            ordered = [self.final[k] for k in sorted(self.final)]
            pred = self.predictor.predict(
                ordered, ed_phase=ed, es_phase=es,
                seg_phenotypes=body["phenotypes_from_segmentation"],
            )
            body["phenotypes"] = {str(k): float(v) for k, v in pred["phenotypes"].items()}
            diag = pred["diagnosis"]
            body["diagnosis"] = {
                "class": str(diag["class"]),
                "probabilities": {str(k): float(v) for k, v in diag["probabilities"].items()},
            }
            if pred.get("ood") is not None:
                # Out-of-distribution score of the latents (kmtr_stream.model.ood): a
                # flagged subject's outputs must not be trusted as they stand.
                body["ood"] = {str(k): v for k, v in pred["ood"].items()}
        return Result(kind="subject", body=body)

    def _validation_fields(self, body: dict[str, Any]) -> None:
        """What validation found, in a subject body: refused, flags, flagged, data_faults."""
        flags = set(self.stream_flags) | set(self.data_faults)
        for r in self.final.values():
            flags.update(r.flags)
        for causes in self.refused.values():
            flags.update(causes)
        if body["n_missing"]:
            flags.add(INCOMPLETE)
        body["refused"] = sorted([s, p] for s, p in self.refused)
        body["flags"] = sorted(flags)
        body["flagged"] = bool(flags)
        body["data_faults"] = dict(sorted(self.data_faults.items()))

    def process(self, message: Any) -> Iterable[Any]:
        if isinstance(message, DataFault):
            self.data_faults[message.cause] = self.data_faults.get(message.cause, 0) + 1
            if message.key is None:
                self.stream_flags.add(message.cause)
            return
        if isinstance(message, SliceRefused):
            yield from self._on_refused(message)
            return
        if isinstance(message, ismrmrd.Image):
            if self._held is not None:
                yield self._held  # it had no result of its own
            self._held = message
            return
        r: SliceResult = message
        image, self._held = self._held, None
        if image is not None and (image.slice, image.phase, image.repetition) != (
            r.slice, r.phase, r.repetition
        ):
            yield image
            image = None
        body = slice_body(r)
        slice_ood = getattr(self.predictor, "slice_ood", None)
        score = slice_ood(r.latent) if slice_ood is not None else None
        if score is not None:
            body["ood_score"] = float(score)
        out: list[Any] = [Result(kind="slice", body=body)]
        if image is not None:
            add_meta(image, slice_meta(body))
        if r.final:
            out.extend(self._aggregate(r))
        last = out[-1]
        subject = last if isinstance(last, Result) and last.kind == "subject" else None
        if image is not None:
            if subject is not None:
                add_meta(image, subject_meta(subject.body))
            yield image
        yield from out

    def _on_refused(self, r: SliceRefused) -> Iterable[Any]:
        """A refused pair counts towards the measurement; it may complete the subject."""
        self.n_slices = max(self.n_slices, int(r.n_slices))
        self.n_phases = max(self.n_phases, int(r.n_phases))
        key = (int(r.slice), int(r.phase))
        if key not in self.final:
            self.refused[key] = tuple(r.causes)
        if not self.subject_emitted and (r.last_in_measurement or self._complete()):
            yield self._subject()

    def _complete(self) -> bool:
        done = set(self.final) | set(self.refused)
        inside = sum(1 for s, p in done if s < self.n_slices and p < self.n_phases)
        return inside >= self.n_slices * self.n_phases

    def _aggregate(self, r: SliceResult) -> list[Result | ErrorReport]:
        """Keep a final result; the subject Result when it completes the measurement."""
        self.n_slices = max(self.n_slices, int(r.n_slices))
        self.n_phases = max(self.n_phases, int(r.n_phases))
        self.final[(int(r.slice), int(r.phase))] = r
        self.refused.pop((int(r.slice), int(r.phase)), None)
        if self.subject_emitted:
            self.context.logger.info(
                "%s: result for slice=%d phase=%d after the subject result is not aggregated",
                self.id, r.slice, r.phase,
            )
            return []
        return [self._subject()] if r.last_in_measurement or self._complete() else []

    def describe_state(self) -> str | None:
        """Final slice results held for the subject result that has not gone out yet."""
        if self.subject_emitted or not self.final:
            return None
        return f"{len(self.final)} slice results held for the subject result"

    def flush(self) -> Iterable[Any]:
        out: list[Any] = []
        if self._held is not None:
            out.append(self._held)
            self._held = None
        if not self.subject_emitted and (self.final or self.refused):
            out.append(self._subject())
        return out
