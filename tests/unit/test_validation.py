"""The validation policy key and the pure readout checks (``kmtr_stream.validation``)."""

from __future__ import annotations

import ismrmrd
import numpy as np
import pytest

from kmtr_stream.chain.config import parse_chain_config
from kmtr_stream.errors import ConfigError
from kmtr_stream.validation import (
    LineLedger,
    ReadoutLimits,
    counter_fault,
    finite_fault,
    header_fault,
)

CHAIN = '[chain]\n[chain.inputs]\n{}\n[[gadgets]]\nid = "p"\ntype = "passthrough"\n'
LIMITS = ReadoutLimits(n_ky=8, n_kz=1, n_slices=2, n_phases=3, n_repetitions=1,
                       samples=(8, 16), coils=4)


def test_validation_policy_is_a_chain_inputs_key() -> None:
    assert parse_chain_config(CHAIN.format("")).inputs.validation == "strict"
    assert parse_chain_config(CHAIN.format('validation = "lenient"')).inputs.validation == (
        "lenient")
    with pytest.raises(ConfigError, match="'maybe' is not one of strict, lenient"):
        parse_chain_config(CHAIN.format('validation = "maybe"'))
    with pytest.raises(ConfigError, match="is not one of pass, warn, error"):
        parse_chain_config(CHAIN.format('image = "strict"'))


def _head(**idx: int) -> ismrmrd.AcquisitionHeader:
    head = ismrmrd.AcquisitionHeader()
    for name, value in idx.items():
        setattr(head.idx, name, value)
    return head


def test_counters_are_checked_against_every_limit() -> None:
    assert counter_fault(_head(slice=1, phase=2, kspace_encode_step_1=7), LIMITS) is None
    assert "slice=2 outside the encoding limits 0..1" in str(counter_fault(_head(slice=2), LIMITS))
    assert "phase=3" in str(counter_fault(_head(phase=3), LIMITS))
    assert "kspace_encode_step_1=8" in str(counter_fault(_head(kspace_encode_step_1=8), LIMITS))
    assert "kspace_encode_step_2=1" in str(counter_fault(_head(kspace_encode_step_2=1), LIMITS))


def test_finite_check_counts_bad_values() -> None:
    data = np.ones((2, 4), np.complex64)
    assert finite_fault(data) is None
    data[1, 2] = complex(np.nan, np.inf)
    assert finite_fault(data) == "readout has 2 non-finite (NaN or infinite) sample values"


def test_ledger_finds_duplicates_but_not_a_separate_calibration_readout() -> None:
    ledger = LineLedger(capacity=2)
    assert ledger.add(_head(kspace_encode_step_1=3), False)
    assert not ledger.add(_head(kspace_encode_step_1=3), False)
    assert ledger.add(_head(kspace_encode_step_1=3), True)  # calibration-only copy
    assert ledger.add(_head(kspace_encode_step_1=3, average=1), False)  # another average


def test_a_partial_echo_readout_fits_the_header_only_with_its_echo_inside() -> None:
    limits = ReadoutLimits(n_ky=8, n_kz=1, n_slices=2, n_phases=3, n_repetitions=1,
                           samples=(64, 128), coils=None, encoded_x=128)
    head = _head()
    head.active_channels = 4
    head.number_of_samples, head.center_sample = 104, 40  # 24 early samples not acquired
    assert header_fault(head, limits, None) is None
    head.center_sample = 0  # not set: the echo position is unknown
    assert "104 samples; the header's matrix size x says 64 or 128, and as a partial echo: " \
        "center_sample = 0" in str(header_fault(head, limits, None))
    head.number_of_samples, head.center_sample = 90, 26
    assert "partial echo beyond 6/8" in str(header_fault(head, limits, None))
    head.number_of_samples, head.center_sample = 130, 65
    assert header_fault(head, limits, None) == (
        "readout has 130 samples; the header's matrix size x says 64 or 128")


def test_discarded_adc_samples_do_not_count_against_the_header() -> None:
    limits = ReadoutLimits(n_ky=8, n_kz=1, n_slices=2, n_phases=3, n_repetitions=1,
                           samples=(64, 128), coils=None, encoded_x=128)
    head = _head()
    head.active_channels = 4
    head.number_of_samples, head.discard_pre, head.discard_post = 138, 6, 4
    assert header_fault(head, limits, None) is None
    head.discard_post = 0
    assert header_fault(head, limits, None) == (
        "readout keeps 132 of its 138 samples (discard_pre = 6, discard_post = 0); the "
        "header's matrix size x says 64 or 128")
    head.discard_pre, head.discard_post = 100, 38
    assert "discard_pre = 100 and discard_post = 38 leave none" in str(
        header_fault(head, limits, None))
