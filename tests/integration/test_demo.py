"""The end-to-end job: a simulated subject through the k-MTR chain on the shipped weights."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from kmtr_stream.cli_demo import DEFAULT_CHAIN
from kmtr_stream.conventions import CLASSES, PHENOTYPES
from kmtr_stream.demo.run_demo import LocalServers, stream_subject
from simulator.config import SimConfig

# A smaller scan than the default keeps this fast; the chain reads sizes from the header.
CFG = SimConfig(n_phases=4, accel=4)


@pytest.fixture(scope="module")
def servers() -> Iterator[LocalServers]:
    with LocalServers([DEFAULT_CHAIN]) as s:
        yield s


@pytest.mark.parametrize("transport", ["zmq", "mrd"])
def test_subject_gets_segmentations_phenotypes_and_diagnosis(
    servers: LocalServers, transport: str
) -> None:
    out = stream_subject(servers.url(transport), 1, seed=11, cfg=CFG, pace=False)
    assert out.errors == []
    # Exactly one final slice result per (slice, phase) and one subject result.
    seen = sorted((r["slice"], r["phase"]) for r in out.slice_results if r["final"])
    assert seen == [(s, p) for s in range(CFG.n_slices) for p in range(CFG.n_phases)]
    assert out.subject is not None and out.subject["missing"] == []
    assert set(out.subject["phenotypes"]) == set(PHENOTYPES)
    probs = out.subject["diagnosis"]["probabilities"]
    assert set(probs) == set(CLASSES) and abs(sum(probs.values()) - 1.0) < 1e-4
    # The shipped model segments the myocardium far better than chance (empty maps give 0).
    assert out.dice_myo > 0.3
    lvedv = out.subject["phenotypes"]["LVEDV"]
    assert 0.5 * out.true_phenotypes["LVEDV"] < lvedv < 2.0 * out.true_phenotypes["LVEDV"]
    assert all(np.isfinite(x) and x >= 0 for x in out.post_last_line_ms())
