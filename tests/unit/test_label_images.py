"""Label images: the geometry of their slice's acquisitions, meta attributes, subject results."""

from __future__ import annotations

from typing import Any

import ismrmrd
import numpy as np
import pytest

from gadgets.slice_buffer import SliceBufferGadget
from gadgets.subject_aggregation import SubjectAggregationGadget
from kmtr_stream.label_images import META_NAMES, label_image, subject_meta
from kmtr_stream.messages import Result, SliceKSpace, SliceResult
from tests.unit.kspace_streams import context, header_xml, make, run, undersampled_lines

N_KY, KX = 16, 12


def _lines(slice_: int, phase: int, mask: np.ndarray) -> list[ismrmrd.Acquisition]:
    rng = np.random.default_rng(slice_ * 10 + phase)
    k = (rng.standard_normal((2, N_KY, KX)) + 0j).astype(np.complex64)
    acqs = undersampled_lines(k, mask, slice_=slice_, phase=phase)
    for i, a in enumerate(acqs):
        a.position[:] = (1.5, -2.0, 10.0 * slice_ + 0.25)
        a.read_dir[:], a.phase_dir[:], a.slice_dir[:] = (0, 1, 0), (0, 0, -1), (-1, 0, 0)
        a.patient_table_position[:] = (0.0, 0.0, -100.0 - i)
        a.acquisition_time_stamp = 1000 * (phase + 1) + a.idx.kspace_encode_step_1
        a.physiology_time_stamp[0] = 40 * phase
    return acqs


def _buffers(mask: np.ndarray, **params: Any) -> list[SliceKSpace]:
    ctx = context(header_xml(KX, KX, N_KY, n_slices=2, n_phases=2, fov_mm=(240.0, 200.0, 6.0),
                             slice_spacing_mm=10.0))
    g = make(SliceBufferGadget, ctx, normalise=False, **params)
    msgs = [a for s in range(2) for p in range(2) for a in _lines(s, p, mask)]
    return [m for m in run([g], msgs) if isinstance(m, SliceKSpace)]


def test_slice_buffer_hands_on_the_centre_lines_header() -> None:
    mask = np.zeros(N_KY, bool)
    mask[::3] = True
    mask[N_KY // 2] = True
    for m in _buffers(mask):
        acq = m.acquisition
        assert isinstance(acq, ismrmrd.AcquisitionHeader)
        assert acq.idx.kspace_encode_step_1 == N_KY // 2  # the centre line, not the first
        assert (acq.idx.slice, acq.idx.phase) == (m.slice, m.phase)
        assert acq.acquisition_time_stamp == 1000 * (m.phase + 1) + N_KY // 2


def test_without_a_centre_line_the_first_line_gives_the_geometry() -> None:
    mask = np.zeros(N_KY, bool)
    mask[1::4] = True  # never the centre (8)
    for m in _buffers(mask):
        assert m.acquisition.idx.kspace_encode_step_1 == 1


def test_progressive_results_and_the_final_one_all_carry_it() -> None:
    mask = np.ones(N_KY, bool)
    out = _buffers(mask, trigger="progressive", progressive_fractions=(0.5,),
                   coverage_fraction=0.25)
    assert any(not m.final for m in out)
    assert all(m.acquisition is not None for m in out)


def test_label_image_geometry_counters_and_meta() -> None:
    mask = np.ones(N_KY, bool)
    m = _buffers(mask)[3]
    labels = np.arange(N_KY * KX, dtype=np.int16).reshape(N_KY, KX) % 4
    img = label_image(m, labels, image_index=7, series=2, timings_ms={"network": 1.25},
                      method="k-MTR")
    acq = m.acquisition
    for name in ("position", "read_dir", "phase_dir", "slice_dir", "patient_table_position",
                 "physiology_time_stamp"):
        assert list(getattr(img, name)[:]) == list(getattr(acq, name)[:]), name
    assert img.acquisition_time_stamp == acq.acquisition_time_stamp
    # FOV: recon space x, y and the slice thickness (6 mm), not the 10 mm spacing.
    assert list(img.field_of_view[:]) == [240.0, 200.0, 6.0]
    assert m.voxel_size_mm[2] == 10.0
    assert tuple(img.matrix_size[:]) == (KX, N_KY, 1) and img.data_type == ismrmrd.DATATYPE_SHORT
    assert (img.slice, img.phase, img.repetition) == (m.slice, m.phase, 0)
    assert (img.image_index, img.image_series_index, img.version) == (7, 2, 1)
    assert img.image_type == ismrmrd.IMTYPE_MAGNITUDE
    np.testing.assert_array_equal(img.data[0, 0], labels)
    assert set(META_NAMES) <= set(img.meta)
    assert img.meta["KMTR_LinesUsed"] == str(N_KY) and img.meta["KMTR_TimingMs_network"] == "1.25"


def _result(s: int, p: int, final: bool = True, last: bool = False) -> SliceResult:
    labels = np.zeros((8, 8), np.int16)
    labels[2:5, 2:5] = 3
    labels[0, :] = 1
    return SliceResult(slice=s, phase=p, repetition=0, n_slices=1, n_phases=2, labels=labels,
                       latent=np.zeros(4, np.float32), lines_used=8, final=final,
                       last_in_measurement=last, voxel_size_mm=(2.0, 2.0, 8.0))


def _image(s: int, p: int) -> ismrmrd.Image:
    img = ismrmrd.Image.from_array(np.zeros((8, 8), np.int16))
    img.slice, img.phase = s, p
    return img


def test_aggregation_puts_areas_on_each_image_and_the_subject_on_the_last() -> None:
    agg = SubjectAggregationGadget("agg", SubjectAggregationGadget.Params(),
                                   context(header_xml(8, 8, 8, n_phases=2)))
    out = run([agg], [_image(0, 0), _result(0, 0), _image(0, 1), _result(0, 1, last=True)])
    kinds = [type(m).__name__ if not isinstance(m, Result) else m.kind for m in out]
    assert kinds == ["Image", "slice", "Image", "slice", "subject"]
    first, last = out[0], out[2]
    assert float(first.meta["KMTR_AreaMm2_LV"]) == 9 * 4.0
    assert float(first.meta["KMTR_AreaMm2_RV"]) == 8 * 4.0
    assert "KMTR_EDPhase" not in first.meta
    subject = out[-1].body
    assert last.meta["KMTR_EDPhase"] == str(subject["ed_phase"])
    lvef = subject["phenotypes_from_segmentation"]["LVEF"]
    assert float(last.meta["KMTR_PhenotypeSeg_LVEF_percent"]) == pytest.approx(lvef, rel=1e-5)
    assert subject_meta(subject)["KMTR_MissingSlicePhases"] == 0


def test_an_image_without_its_result_is_not_held_back() -> None:
    agg = SubjectAggregationGadget("agg", SubjectAggregationGadget.Params(),
                                   context(header_xml(8, 8, 8, n_phases=2)))
    stray, other = _image(5, 5), _image(0, 0)
    out = list(agg.process(stray))
    assert out == []
    out = list(agg.process(other))  # the next image releases it
    assert out == [stray]
    out = list(agg.process(_result(0, 1)))  # a result of another slice: released unchanged
    assert out[0] is other and "KMTR_AreaMm2_LV" not in other.meta
    assert list(agg.process(_image(0, 0))) == []
    assert [type(m).__name__ for m in agg.flush()] == ["Image", "Result"]  # image, subject
