"""The k-MTR chain on protocols other than the model's grid, over a real socket."""

from __future__ import annotations

from dataclasses import replace

import ismrmrd
import numpy as np
import pytest

from kmtr_stream.demo.run_demo import LocalServers, run_subject
from kmtr_stream.demo.scanner import stream_scan
from kmtr_stream.messages import ErrorReport, Result
from simulator.config import SimConfig
from simulator.scan import simulate_scan
from tests.integration.conftest import REPLY_TIMEOUT_S

#: Another matrix, field of view, coil count and calibration size than the model's grid.
OTHER = SimConfig(
    nx=80, ny=72, fov_x_mm=260.0, fov_y_mm=234.0, n_slices=3, n_phases=3, n_coils=6,
    n_calib=16, accel=3, n_noise_readouts=4, tr_ms=0.5, supersample=1,
)


def test_other_protocol_streams_to_results_on_the_model_grid() -> None:
    scan = simulate_scan(1_000_001, 0, OTHER)
    with LocalServers(["configs/kmtr.toml"]) as servers:
        report = stream_scan(scan, OTHER, servers.url("zmq"), pace=False, timeout_s=REPLY_TIMEOUT_S)
    errors = [m for m in report.replies if isinstance(m, ErrorReport)]
    assert errors == []
    images = [m for m in report.replies if isinstance(m, ismrmrd.Image)]
    assert len(images) == OTHER.n_slices * OTHER.n_phases
    assert {tuple(np.asarray(m.data).shape[-2:]) for m in images} == {(64, 64)}
    subject = [m for m in report.replies if isinstance(m, Result) and m.kind == "subject"]
    assert len(subject) == 1 and subject[0].body["missing"] == []
    slices = [m.body for m in report.replies if isinstance(m, Result) and m.kind == "slice"]
    # Areas are in mm^2 of the model grid (3.125 mm pixels), whatever the acquisition's.
    assert all(b["areas_mm2"]["LV"] % (3.125 * 3.125) < 1e-6 for b in slices)


def test_slice_spacing_is_taken_from_the_slice_positions() -> None:
    """A header without the slice_spacing_mm user parameter, as real scanners send it."""
    cfg = replace(OTHER, slice_spacing_mm=12.0)
    scan = simulate_scan(1_000_003, 0, cfg)
    xml = scan.xml(cfg)
    start, end = xml.index("<userParameters>"), xml.index("</userParameters>")
    xml = xml[:start] + xml[end + len("</userParameters>"):]
    assert "slice_spacing_mm" not in xml
    plain = replace(scan)
    object.__setattr__(plain, "xml", lambda c: xml)
    with LocalServers(["configs/kmtr.toml"]) as servers:
        report = stream_scan(plain, cfg, servers.url("zmq"), pace=False, timeout_s=REPLY_TIMEOUT_S)
    assert not [m for m in report.replies if isinstance(m, ErrorReport)]
    (subject,) = [m for m in report.replies if isinstance(m, Result) and m.kind == "subject"]
    assert subject.body["slice_spacing_source"] == "positions"
    assert subject.body["slice_spacing_mm"] == pytest.approx(12.0)


def test_non_cartesian_header_is_refused_before_any_slice() -> None:
    scan = simulate_scan(1_000_002, 0, OTHER)
    xml = scan.xml(OTHER).replace("<trajectory>cartesian</trajectory>",
                                  "<trajectory>radial</trajectory>")
    assert "radial" in xml
    bad = replace(scan)
    object.__setattr__(bad, "xml", lambda cfg: xml)
    with LocalServers(["configs/kmtr.toml"]) as servers:
        report = stream_scan(bad, OTHER, servers.url("zmq"), pace=False, timeout_s=REPLY_TIMEOUT_S)
    errors = [m for m in report.replies if isinstance(m, ErrorReport)]
    # One error when the header arrives, then one per complete slice, all naming the field.
    assert len(errors) == 1 + OTHER.n_slices * OTHER.n_phases
    assert all("encoding.trajectory = 'radial'" in e.message for e in errors)
    assert not any(isinstance(m, Result) for m in report.replies)


@pytest.mark.parametrize(
    "config", ["configs/kmtr_streaming.toml", "configs/recon_then_analyze.toml"])
def test_partial_echo_readouts_cost_little_myocardium_dice(config: str) -> None:
    """Asymmetric echoes (75 % of each readout, the most that is accepted) are zero-filled
    to the encoded size: no error, and the returned myocardium is scored against the
    simulator's label maps about as well as the full-echo scan's."""
    cfg = SimConfig(n_phases=2, n_noise_readouts=4, tr_ms=0.5)
    dice = {}
    with LocalServers([config]) as servers:
        for echo in (1.0, 0.75):
            run = run_subject(servers.url("zmq"), 1, 0, replace(cfg, partial_echo=echo),
                              pace=False, timeout_s=REPLY_TIMEOUT_S)
            assert run.outcome.errors == [] and len(run.outcome.slice_results) == 16
            dice[echo] = run.outcome.dice_myo
    assert dice[1.0] > 0.7 and abs(dice[0.75] - dice[1.0]) < 0.03


def test_discarded_adc_samples_change_nothing() -> None:
    """Readouts that carry a filter transient at either end, flagged discard_pre/post
    (with a partial echo as well), give the labels of the same scan without them."""
    cfg = SimConfig(n_phases=2, n_noise_readouts=4, tr_ms=0.5, partial_echo=0.8)
    labels = {}
    with LocalServers(["configs/kmtr.toml"]) as servers:
        for n in (0, 7):
            run = run_subject(servers.url("zmq"), 2, 0, replace(cfg, adc_discard=n),
                              pace=False, timeout_s=REPLY_TIMEOUT_S)
            assert run.outcome.errors == [] and len(run.outcome.slice_results) == 16
            labels[n] = {(int(m.slice), int(m.phase)): np.asarray(m.data)
                         for m in run.report.replies if isinstance(m, ismrmrd.Image)}
    assert labels[0].keys() == labels[7].keys()
    same = np.mean([np.mean(labels[0][k] == labels[7][k]) for k in labels[0]])
    assert same > 0.999
