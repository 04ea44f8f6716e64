"""`kmtr-stream robustness` end to end on the shipped weights and a few test subjects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kmtr_stream.cli import main
from kmtr_stream.evaluation.robustness import broken_inputs


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("robustness")
    rc = main(["robustness", "--subjects", "3", "--threads", "1",
               "--cache-dir", str(tmp / "cache"), "--out", str(tmp / "out")])
    assert rc in (0, None)
    return json.loads((tmp / "out" / "robustness.json").read_text())


def test_every_source_reports_under_its_own_name(report: dict) -> None:
    k = np.zeros((1, 2, 4, 4), np.complex64)
    names = set(broken_inputs(k, np.zeros((1, 4, 4), int), np.zeros((1, 4, 4)), seed=0))
    for res in report["models"].values():
        assert set(res["broken"]) == names
        by = res["ood"]["by_source"]
        assert set(by) == {"shifted", *names}
        # the pooled report is the union of the sources, each over the same subjects
        assert sum(r["n_failures"] for r in by.values()) == res["ood"]["n_failures"]
        assert all(r["n_in_distribution"] == 3 for r in by.values())


def test_noise_only_fails_and_is_flagged_as_such(report: dict) -> None:
    for res in report["models"].values():
        assert res["broken"]["noise_only"]["dice_myo"] < 0.2
        noise = res["ood"]["by_source"]["noise_only"]
        assert noise["n_failures"] == 3 and noise["flagged_failures"] == 1.0


def test_poses_include_turns_a_quarter_fov_shift_and_the_mirrored_heart(report: dict) -> None:
    for res in report["models"].values():
        poses = res["poses"]
        assert set(poses) == {"rot0", "rot90", "rot180", "rot270", "shift_quarter_fov",
                              "mirrored"}
        # the same hearts, moved: every pose is still segmented, not lost
        assert all(d["LV"] > 0.5 for d in poses.values())
