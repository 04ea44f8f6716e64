"""subject_aggregation gadget: slice results, subject result, predictor, missing pairs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gadgets.subject_aggregation import SubjectAggregationGadget
from kmtr_stream.cardiac import phenotypes_from_labels
from kmtr_stream.chain.gadget import ChainContext
from kmtr_stream.conventions import CLASSES, PHENOTYPES, Label
from kmtr_stream.errors import ConfigError
from kmtr_stream.messages import Result, SliceResult
from tests.unit.chain_helpers import HEADER

VOXEL = (1.5, 1.5, 8.0)


def _labels(lv_radius: int, n: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - n / 2, xx - n / 2)
    lab = np.zeros((n, n), np.int16)
    lab[r < lv_radius + 3] = int(Label.LV_MYOCARDIUM)
    lab[r < lv_radius] = int(Label.LV_CAVITY)
    lab[2:6, 2:8] = int(Label.RV_CAVITY)
    return lab


def _result(
    s: int, p: int, n_s: int, n_p: int, radius: int, final: bool = True, last: bool = False,
    offset: float | None = None,
) -> SliceResult:
    return SliceResult(
        slice=s,
        phase=p,
        repetition=0,
        n_slices=n_s,
        n_phases=n_p,
        labels=_labels(radius),
        latent=np.full(4, float(s + 10 * p), np.float32),
        lines_used=40,
        final=final,
        last_in_measurement=last,
        voxel_size_mm=VOXEL,
        timings_ms={"network": 3.5},
        slice_offset_mm=offset,
    )


class MeanLatentPredictor:
    """Test double of the model's subject predictor: checkable arithmetic on the latents."""

    def __init__(self) -> None:
        self.calls: list[list[SliceResult]] = []
        self.phases: list[tuple[int, int | None]] = []

    def predict(
        self, results: list[SliceResult], ed_phase: int = 0, es_phase: int | None = None,
        seg_phenotypes: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        self.calls.append(results)
        self.phases.append((ed_phase, es_phase))
        mean = float(np.mean([r.latent.mean() for r in results]))
        probs = {c: (1.0 if c == "DCM" else 0.0) for c in CLASSES}
        return {
            "phenotypes": {k: mean for k in PHENOTYPES},
            "diagnosis": {"class": "DCM", "probabilities": probs},
        }


def _gadget(**params: Any) -> SubjectAggregationGadget:
    return SubjectAggregationGadget(
        "agg", SubjectAggregationGadget.Params(**params), ChainContext.for_stream(HEADER)
    )


def test_slice_results_and_subject_when_complete() -> None:
    g = _gadget()
    g.predictor = MeanLatentPredictor()
    radii = {0: 9, 1: 6, 2: 4, 3: 7}  # ES = phase 2
    out: list[Any] = []
    for p, rad in radii.items():
        for s in range(2):
            out.extend(g.process(_result(s, p, 2, 4, rad)))
    slices = [m for m in out if m.kind == "slice"]
    subjects = [m for m in out if m.kind == "subject"]
    assert len(slices) == 8 and len(subjects) == 1 and out[-1] is subjects[0]
    b0 = slices[0].body
    assert set(b0) == {
        "slice",
        "phase",
        "repetition",
        "lines_used",
        "final",
        "areas_mm2",
        "timings_ms",
        "flags",
    }
    assert b0["flags"] == []
    lv_px = int((_labels(9) == int(Label.LV_CAVITY)).sum())
    assert b0["areas_mm2"]["LV"] == pytest.approx(lv_px * 2.25)
    assert b0["timings_ms"] == {"network": 3.5}
    body = subjects[0].body
    assert (body["n_slices"], body["n_phases"], body["ed_phase"], body["es_phase"]) == (2, 4, 0, 2)
    vol = np.stack([np.stack([_labels(radii[p])] * 2) for p in range(4)])
    ref = phenotypes_from_labels(vol, VOXEL, ed_phase=0, es_phase=2)
    assert body["phenotypes_from_segmentation"] == pytest.approx(ref)
    assert body["phenotype_units"]["LVEF"] == "%"
    assert body["missing"] == [] and body["n_missing"] == 0
    assert (body["refused"], body["flags"], body["flagged"]) == ([], [], False)
    assert body["missing"] == []
    assert (body["slice_spacing_mm"], body["slice_spacing_source"]) == (VOXEL[2], "header")
    assert body["diagnosis"]["class"] == "DCM"
    expected_mean = np.mean([s + 10 * p for p in range(4) for s in range(2)])
    assert body["phenotypes"]["LVEDV"] == pytest.approx(expected_mean)
    assert list(g.flush()) == []


def test_progressive_results_are_reported_but_not_aggregated() -> None:
    g = _gadget()
    out = list(g.process(_result(0, 0, 1, 2, 8, final=False)))
    assert [m.kind for m in out] == ["slice"] and out[0].body["final"] is False
    assert list(g.flush()) == []  # nothing final to aggregate


def test_flush_and_last_in_measurement_report_missing() -> None:
    g = _gadget(ed_phase=1)
    list(g.process(_result(0, 0, 2, 3, 5)))
    out = list(g.process(_result(0, 1, 2, 3, 9, last=True)))
    (subject,) = [m for m in out if isinstance(m, Result) and m.kind == "subject"]
    assert subject.body["missing"] == [[1, 0], [1, 1], [0, 2], [1, 2]]
    assert (subject.body["ed_phase"], subject.body["es_phase"]) == (1, 0)
    assert "diagnosis" not in subject.body
    assert list(g.flush()) == []
    g2 = _gadget()
    list(g2.process(_result(0, 0, 1, 2, 5)))
    (late,) = g2.flush()
    assert late.kind == "subject" and late.body["missing"] == [[0, 1]]


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot load model 'no-such-model'"):
        _gadget(model="no-such-model")


def test_network_and_segmentation_share_one_ed_es_when_ed_phase_is_not_0() -> None:
    g = _gadget(ed_phase=2)
    pred = MeanLatentPredictor()
    g.predictor = pred
    radii = {0: 5, 1: 9, 2: 10, 3: 7}  # ED = 2 (configured); ES = phase 0, the smallest other
    out: list[Any] = []
    for p, rad in radii.items():
        for s in range(2):
            out.extend(g.process(_result(s, p, 2, 4, rad)))
    (subject,) = [m for m in out if m.kind == "subject"]
    body = subject.body
    assert (body["ed_phase"], body["es_phase"]) == (2, 0)
    assert pred.phases == [(2, 0)]  # the network got the same pair, not its own phase-0 ED
    vol = np.stack([np.stack([_labels(radii[p])] * 2) for p in range(4)])
    ref = phenotypes_from_labels(vol, VOXEL, ed_phase=2, es_phase=0)
    assert body["phenotypes_from_segmentation"] == pytest.approx(ref)


def test_slice_spacing_comes_from_the_slice_positions() -> None:
    """Volumes use the acquisitions' slice positions, not the header's dz (8 mm here)."""
    g = _gadget()
    radii = {0: 9, 1: 5}
    out: list[Any] = []
    for p, rad in radii.items():
        for s in range(3):
            # slices 11.5 mm apart along the normal, listed from apex to base
            out.extend(g.process(_result(s, p, 3, 2, rad, offset=40.0 - 11.5 * s)))
    (subject,) = [m for m in out if m.kind == "subject"]
    body = subject.body
    assert body["slice_spacing_source"] == "positions"
    assert body["slice_spacing_mm"] == pytest.approx(11.5)
    vol = np.stack([np.stack([_labels(radii[p])] * 3) for p in range(2)])
    ref = phenotypes_from_labels(vol, (*VOXEL[:2], 11.5), ed_phase=0, es_phase=1)
    assert body["phenotypes_from_segmentation"] == pytest.approx(ref)
