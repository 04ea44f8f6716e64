"""Safe log text and counted repeats."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pytest

from kmtr_stream.chain.gadget import Gadget
from kmtr_stream.chain.stages import run_gadgets
from kmtr_stream.logsafe import SafeFormatter, safe_text
from tests.unit.kspace_streams import context, header_xml


def test_safe_text_escapes_and_cuts() -> None:
    assert safe_text("a\nb\x1b[31m", 100) == "a\\nb\\x1b[31m"
    assert safe_text("x" * 50, 10) == "x" * 10 + "... (40 more characters)"
    assert safe_text("Grüße", 10) == "Grüße"


def test_formatter_escapes_every_message() -> None:
    rec = logging.LogRecord("x", logging.INFO, "f", 1, "text: %s", ("a\nERROR forged",), None)
    assert "\n" not in SafeFormatter("%(message)s").format(rec)


class _Broken(Gadget):
    handles = (int,)

    def process(self, message: Any) -> Iterable[Any]:
        raise ValueError(f"bad readout {message}")


def test_one_failure_repeated_is_logged_three_times_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = run_gadgets([_Broken("broken", None, context(header_xml(5, 5, 8)))], range(2000))
    assert len(out) == 2000  # every message still gets its error report
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 3
    assert "ValueError in process repeated 1997 more times" in caplog.text
