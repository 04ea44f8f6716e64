"""Cheap header copies and Acquisition construction equal what ismrmrd's own calls give."""

from __future__ import annotations

import ismrmrd
import numpy as np
import pytest

from kmtr_stream import acquisition_fast
from kmtr_stream.acquisition_fast import copy_head, new_acquisition


def _acq(rng: np.random.Generator) -> ismrmrd.Acquisition:
    data = (rng.standard_normal((4, 32)) + 1j * rng.standard_normal((4, 32))).astype(np.complex64)
    traj = rng.standard_normal((32, 2)).astype(np.float32)
    acq = ismrmrd.Acquisition.from_array(data, traj)
    acq.idx.kspace_encode_step_1 = 17
    acq.idx.slice = 3
    acq.scan_counter = 99
    acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
    acq.channel_mask[0] = 0b1111
    acq.position[:] = (1.5, -2.0, 30.0)
    return acq


def test_copy_head_equals_get_head_and_is_independent() -> None:
    acq = _acq(np.random.default_rng(0))
    head = copy_head(acq)
    assert bytes(head) == bytes(acq.getHead())
    head.idx.kspace_encode_step_1 = 5
    head.position[2] = 0.0
    assert acq.idx.kspace_encode_step_1 == 17 and acq.position[2] == 30.0


@pytest.mark.parametrize("fast", [True, False])
def test_new_acquisition_equals_the_constructor(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(acquisition_fast, "_FAST_ACQ", fast)
    src = _acq(np.random.default_rng(1))
    head = copy_head(src)
    built = new_acquisition(head, src.data.copy(), src.traj.copy())
    ref = ismrmrd.Acquisition(src.getHead(), data=src.data.copy(), trajectory=src.traj.copy())
    assert built == ref
    assert built.idx.kspace_encode_step_1 == 17 and built.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE)
    np.testing.assert_array_equal(built.data, src.data)
    assert built.getHead().number_of_samples == 32


def test_the_fast_path_is_taken_on_this_ismrmrd() -> None:
    assert acquisition_fast._probe_acquisition_slots()
