"""Standard-MRD forms of results and errors (TEXT only) read back as what they were."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from kmtr_stream.codec import decode_stream, encode_stream
from kmtr_stream.codec.standard import (
    error_text,
    log_line,
    parse_text,
    result_text,
    to_standard,
)
from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import Close, ErrorReport, Result, Text
from tests.property.test_codec_roundtrip import plain, reports, results


def finite(value: Any) -> Any:
    """``value`` as JSON carries it: infinities (which JSON lacks) as None."""
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


@settings(max_examples=60, deadline=None)
@given(results)
def test_result_text_reads_back_as_the_result(result: Result) -> None:
    text = result_text(result)
    (wire,) = decode_stream(encode_stream(text, text_nul=True))
    assert parse_text(wire) == Result(result.kind, finite(result.body))
    obj = json.loads(text.text)  # plain JSON: the msgpack map with its envelope
    assert obj["schema_version"] == 1 and obj["kind"] == result.kind


@settings(max_examples=60, deadline=None)
@given(reports.map(lambda r: dataclasses.replace(r, code=re.sub(r"[^A-Za-z0-9_.-]", "x", r.code))))
def test_error_text_reads_back_as_the_error(report: ErrorReport) -> None:
    text = error_text(report)
    assert text.text.startswith("ERROR    [")  # python-ismrmrd-server: "%s %s" % ("ERROR   ", ...)
    assert "\0" not in text.text
    back = parse_text(text)
    assert isinstance(back, ErrorReport)
    assert back.code == report.code and back.gadget == report.gadget
    assert back.message_index == report.message_index
    assert back.context == finite(report.context)
    assert back.message == report.message.replace("\0", "\\0")


@settings(max_examples=40, deadline=None)
@given(plain)
def test_non_finite_floats_become_null_and_numpy_values_plain(value: Any) -> None:
    body = {"v": value, "f": np.float32(2.5), "n": float("nan"), "a": np.arange(2)}
    obj = json.loads(result_text(Result("slice", body)).text)  # strict JSON parses it
    assert obj["f"] == 2.5 and obj["n"] is None and obj["a"] == [0, 1]


def test_codes_that_are_not_identifiers_are_made_so() -> None:
    back = parse_text(error_text(ErrorReport(code="bad]\ncode", message="m")))
    assert isinstance(back, ErrorReport) and (back.code, back.message) == ("bad__code", "m")


def test_a_traceback_from_a_python_ismrmrd_server_is_an_error() -> None:
    tb = "Traceback (most recent call last):\n  File x\nValueError: bad data"
    back = parse_text(log_line("ERROR", tb))
    assert back == ErrorReport(code="server", message=tb)


@pytest.mark.parametrize("text", [
    "INFO     hello", "WARNING  chain 'kmtr' does not use WAVEFORM", "{not json", '{"a": 1}',
    "ERRORS are fine", "",
])
def test_other_text_stays_text(text: str) -> None:
    assert parse_text(Text(text)) == Text(text)


def test_only_standard_ids_remain() -> None:
    for msg in (Result("slice", {"x": 1}), ErrorReport("gadget", "boom"), Close(), Text("t")):
        out = to_standard(msg)
        assert type(out) in (Close, Text)


def test_reserved_keys_are_refused() -> None:
    with pytest.raises(ProtocolError, match="reserved"):
        result_text(Result("slice", {"kind": "x"}))


@pytest.mark.parametrize("report", [
    ErrorReport(code="", message="", gadget=" | ", message_index=None, context={}),
    ErrorReport(code="", message="", message_index=0, context={" | ": None}),
    ErrorReport(code="c", message='m | {"a": 1}', gadget="g | {x", context={"k": " | {"}),
])
def test_separator_inside_the_details_or_the_message_reads_back(report: ErrorReport) -> None:
    back = parse_text(error_text(report))
    assert isinstance(back, ErrorReport)
    assert (back.message, back.gadget, back.message_index, back.context) == (
        report.message, report.gadget, report.message_index, report.context
    )
