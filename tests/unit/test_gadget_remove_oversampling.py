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


def test_discarded_adc_samples_are_dropped_before_the_crop() -> None:
    """A readout stored with 6 + 4 extra ADC samples (discard_pre/post) gives the plain
    readout's output, its centre moved, and leaves with no discards; at recon size too."""
    rng = np.random.default_rng(8)
    ctx = context(header_xml(128, 64, 8))
    g = make(RemoveOversamplingGadget, ctx)
    plain = rng.standard_normal((4, 256)).view(np.complex128).astype(np.complex64)
    junk = (1e4 * rng.standard_normal((4, 20))).view(np.complex128).astype(np.complex64)
    acq = acquisition(np.concatenate([junk[:, :6], plain, junk[:, 6:]], axis=1), ky=2)
    acq.discard_pre, acq.discard_post, acq.center_sample = 6, 4, 64 + 6
    ref = acquisition(plain, ky=2)
    ref.center_sample = 64
    small = acquisition(np.concatenate([junk[:, :3], plain[:, :64], junk[:, 3:5]], axis=1))
    small.discard_pre, small.discard_post = 3, 2
    got, want, cut = run([g], [acq, ref, small])
    assert (got.number_of_samples, got.center_sample) == (64, 32)
    assert got.discard_pre == got.discard_post == 0
    np.testing.assert_allclose(got.data, want.data, rtol=1e-5, atol=1e-5)
    assert cut.number_of_samples == 64 and cut.discard_pre == cut.discard_post == 0
    np.testing.assert_allclose(cut.data, plain[:, :64], rtol=1e-6, atol=1e-6)
    gone = acquisition(np.ones((3, 40)))
    gone.discard_pre, gone.discard_post = 30, 10
    with pytest.raises(GadgetError, match="discard_pre = 30 and discard_post = 10 leave none"):
        list(g.process(gone))
    wrong = acquisition(np.ones((3, 140)))
    wrong.discard_pre = 2
    with pytest.raises(GadgetError, match=r"readout keeps 138 of its 140 samples \(discard_pre"):
        list(g.process(wrong))
