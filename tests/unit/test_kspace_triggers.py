"""Trigger decisions: thresholds, calibration completeness, once-only emission."""

from __future__ import annotations

import pytest

from kmtr_stream.kspace.triggers import (
    CoverageState,
    Emission,
    TriggerPolicy,
    decide,
    decide_flush,
)


def _feed(
    policy: TriggerPolicy, lines: list[tuple[int, bool]], last_flag_at: int = -1
) -> list[tuple[int, Emission]]:
    state = CoverageState()
    seen: set[int] = set()
    out = []
    for i, (ky, calib) in enumerate(lines):
        state.add_line(policy, ky, ky not in seen, calib)
        seen.add(ky)
        em = decide(policy, state, i == last_flag_at)
        if em is not None:
            out.append((i, em))
    fl = decide_flush(state)
    if fl is not None:
        out.append((len(lines), fl))
    return out


def test_thresholds() -> None:
    p = TriggerPolicy(
        "progressive",
        n_ky=64,
        center_line=32,
        coverage_fraction=0.25,
        progressive_fractions=(0.5, 0.1, 0.5, 0.75),
    )
    assert p.step_thresholds == (16, 32, 48)
    assert TriggerPolicy("coverage", 63, 31, coverage_fraction=0.3).step_thresholds == (19,)
    assert TriggerPolicy("last_in_slice", 64, 32).step_thresholds == ()
    with pytest.raises(ValueError, match="unknown trigger mode"):
        TriggerPolicy("sometimes", 64, 32)


def test_coverage_waits_for_centre_and_fires_once() -> None:
    p = TriggerPolicy("coverage", n_ky=20, center_line=10, coverage_fraction=0.2)  # 4 lines
    lines = [(0, False), (2, False), (4, False), (6, False), (8, False), (10, False), (12, False)]
    out = _feed(p, lines, last_flag_at=6)
    assert out == [(5, Emission("coverage", True))]


def test_inferred_calibration_region_must_be_complete() -> None:
    # Sequential order: 0, 4, 8 then the ACS block 8..12 flagged, then 16.
    p = TriggerPolicy(
        "coverage", n_ky=20, center_line=10, coverage_fraction=0.1, expect_calibration=True
    )
    lines = (
        [(0, False), (4, False)] + [(k, True) for k in range(8, 13)] + [(16, False), (18, False)]
    )
    out = _feed(p, lines)
    # Complete only once a non-calibration line above the block (16) arrived.
    assert out == [(7, Emission("coverage", True))]


def test_expected_calibration_blocks_centre_only_rule() -> None:
    p = TriggerPolicy(
        "coverage", n_ky=8, center_line=4, coverage_fraction=0.1, expect_calibration=True
    )
    out = _feed(p, [(k, False) for k in range(8)])
    assert out == [(8, Emission("flush", True))]


def test_explicit_calibration_width() -> None:
    p = TriggerPolicy(
        "coverage", n_ky=32, center_line=16, coverage_fraction=0.1, calibration_lines=4
    )  # region 14..17
    lines = [(0, False), (4, False), (8, False), (14, False), (15, False), (16, False), (17, False)]
    assert _feed(p, lines) == [(6, Emission("coverage", True))]


def test_progressive_steps_each_once_then_final() -> None:
    p = TriggerPolicy(
        "progressive",
        n_ky=10,
        center_line=5,
        coverage_fraction=0.3,
        progressive_fractions=(0.5, 0.7),
    )
    lines = [(k, False) for k in (5, 0, 1, 2, 3, 4, 6, 7, 7, 8)]
    out = _feed(p, lines, last_flag_at=9)
    assert out == [
        (2, Emission("progressive", False)),
        (4, Emission("progressive", False)),
        (6, Emission("progressive", False)),
        (9, Emission("progressive", True)),
    ]


def test_one_line_crossing_several_steps_emits_once() -> None:
    p = TriggerPolicy(
        "progressive",
        n_ky=10,
        center_line=9,
        coverage_fraction=0.2,
        progressive_fractions=(0.4, 0.6),
    )
    # The centre arrives last: all three steps are met by that one line.
    out = _feed(p, [(k, False) for k in range(10)])
    assert out == [(9, Emission("progressive", False)), (10, Emission("flush", True))]


def test_last_in_slice_and_flush_modes() -> None:
    p = TriggerPolicy("last_in_slice", n_ky=6, center_line=3)
    assert _feed(p, [(k, False) for k in range(6)], last_flag_at=5) == [
        (5, Emission("last_in_slice", True))
    ]
    assert _feed(p, [(k, False) for k in range(4)]) == [(4, Emission("flush", True))]
    pf = TriggerPolicy("flush", n_ky=6, center_line=3)
    assert _feed(pf, [(k, False) for k in range(6)], last_flag_at=5) == [
        (6, Emission("flush", True))
    ]


def test_last_in_slice_closes_coverage_buffer_before_target() -> None:
    p = TriggerPolicy("coverage", n_ky=20, center_line=10, coverage_fraction=0.9)
    out = _feed(p, [(10, False), (11, False)], last_flag_at=1)
    assert out == [(1, Emission("last_in_slice", True))]
