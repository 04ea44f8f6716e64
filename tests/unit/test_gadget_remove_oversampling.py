"""remove_oversampling gadget: header-driven crop, acquisition header updated."""

from __future__ import annotations

import ismrmrd
import numpy as np
import pytest

from gadgets.remove_oversampling import RemoveOversamplingGadget
from kmtr_stream.errors import GadgetError
from kmtr_stream.kspace.oversampling import remove_readout_oversampling
from tests.unit.kspace_streams import acquisition, context, header_xml, make, run


@pytest.mark.parametrize(("coils", "enc", "rec"), [(3, 256, 128), (5, 74, 37), (7, 101, 50)])
def test_crops_to_recon_size(coils: int, enc: int, rec: int) -> None:
    rng = np.random.default_rng(enc)
    ctx = context(header_xml(enc, rec, 8))
    g = make(RemoveOversamplingGadget, ctx)
    data = (rng.standard_normal((coils, enc)) + 1j * rng.standard_normal((coils, enc))).astype(
        np.complex64
    )
    acq = acquisition(data, ky=3, slice_=1, phase=2, flags=[ismrmrd.ACQ_LAST_IN_SLICE])
    acq.center_sample = enc // 2
    (out,) = run([g], [acq])
    assert out.number_of_samples == rec and out.active_channels == coils
    assert out.center_sample == round((enc // 2) * rec / enc)
    assert out.data.shape == (coils, rec) and out.data.dtype == np.complex64
    assert (out.idx.kspace_encode_step_1, out.idx.slice, out.idx.phase) == (3, 1, 2)
    assert out.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE)
    np.testing.assert_allclose(
        out.data, remove_readout_oversampling(data, rec), rtol=1e-5, atol=1e-5
    )
    # The wire form stays consistent with the new size.
    back = ismrmrd.Acquisition.from_bytes(out.to_bytes())
    np.testing.assert_array_equal(back.data, out.data)


def test_passes_noise_and_recon_size_and_rejects_other_sizes() -> None:
    ctx = context(header_xml(64, 32, 8))
    g = make(RemoveOversamplingGadget, ctx, gadget_id="ro")
    noise = acquisition(np.ones((3, 64)), flags=[ismrmrd.ACQ_IS_NOISE_MEASUREMENT])
    small = acquisition(np.ones((3, 32)))
    navigator = acquisition(np.ones((3, 40)), flags=[ismrmrd.ACQ_IS_NAVIGATION_DATA])
    out = run([g], [noise, small, navigator])
    assert out[0] is noise and out[1] is small and out[2] is navigator  # no image line: as is
    with pytest.raises(GadgetError, match="readout has 70 samples"):
        list(g.process(acquisition(np.ones((3, 70)))))
    unset = acquisition(np.ones((3, 50)))
    unset.center_sample = 0  # a shorter readout needs its echo position
    with pytest.raises(GadgetError, match="center_sample = 0 of a 50-sample readout"):
        list(g.process(unset))


def test_partial_echo_readout_is_zero_filled_to_the_encoded_size_then_cropped() -> None:
    """A 104-of-128-sample asymmetric echo gives the full readout's crop with the 24
    unacquired early samples zero, its echo centred, and no trajectory."""
    rng = np.random.default_rng(5)
    ctx = context(header_xml(128, 64, 8))
    g = make(RemoveOversamplingGadget, ctx)
    full = rng.standard_normal((4, 256)).view(np.complex128).astype(np.complex64)
    acq = acquisition(full[:, 24:], ky=5, flags=[ismrmrd.ACQ_LAST_IN_SLICE])
    acq.center_sample = 64 - 24
    sym = acquisition(np.where(np.arange(128) < 24, 0, full).astype(np.complex64), ky=5)
    sym.center_sample = 64
    got, ref = run([g], [acq, sym])
    assert got.number_of_samples == 64 and got.center_sample == 32
    assert got.trajectory_dimensions == 0 and got.idx.kspace_encode_step_1 == 5
    assert got.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE)
    np.testing.assert_allclose(got.data, ref.data, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        got.data, remove_readout_oversampling(sym.data, 64), rtol=1e-4, atol=1e-4
    )
