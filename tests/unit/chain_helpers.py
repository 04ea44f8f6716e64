"""Test gadgets and small ISMRMRD messages shared by the chain runtime tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import ismrmrd
import numpy as np

from kmtr_stream.chain.gadget import Gadget, StreamHeader, param
from kmtr_stream.chain.registry import register
from kmtr_stream.messages import Result, Text, XmlHeader

HEADER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <experimentalConditions><H1resonanceFrequency_Hz>63500000</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace><matrixSize><x>16</x><y>12</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>320</x><y>240</y><z>8</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>8</x><y>12</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>160</x><y>240</y><z>8</z></fieldOfView_mm></reconSpace>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>11</maximum><center>6</center></kspace_encoding_step_1>
    </encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
</ismrmrdHeader>
"""

#: The test stream's header, parsed once as a session does.
HEADER = StreamHeader.parse(HEADER_XML)


def make_acquisition(
    i: int, coils: int = 3, samples: int = 16, seed: int = 0
) -> ismrmrd.Acquisition:
    """A small acquisition with data ``(coils, samples)`` complex64 and counters set from ``i``."""
    rng = np.random.default_rng(seed + i)
    data = (
        rng.standard_normal((coils, samples)) + 1j * rng.standard_normal((coils, samples))
    ).astype(np.complex64)
    acq = ismrmrd.Acquisition.from_array(data)
    acq.scan_counter = i
    acq.idx.kspace_encode_step_1 = i % 12
    acq.idx.slice = i // 12
    acq.sample_time_us = 2.5
    return acq


@dataclass(frozen=True)
class TagParams:
    """Params of the test tagging gadget."""

    tag: str = param("x", doc="text appended")
    fail_on: int = param(-1, min=-1, doc="Text index to raise on")
    delay_s: float = param(0.0, min=0.0, max=1.0, doc="sleep per message")


@register("_test_tag")
class TagGadget(Gadget):
    """Appends ``tag`` to every Text; raises on the Text whose number is ``fail_on``."""

    handles: ClassVar[tuple[type, ...]] = (Text,)
    Params: ClassVar[type] = TagParams
    log: ClassVar[list[tuple[str, str]]] = []
    lock = threading.Lock()

    def __init__(self, gadget_id: str, params: Any, context: Any) -> None:
        super().__init__(gadget_id, params, context)
        self.seen = 0
        self.header: Any = context.header

    def process(self, message: Any) -> Iterator[Any]:
        if self.params.delay_s:
            time.sleep(self.params.delay_s)
        n = self.seen
        self.seen += 1
        if n == self.params.fail_on:
            raise ValueError(f"boom on text {n}")
        yield Text(message.text + self.params.tag)

    def flush(self) -> Iterator[Any]:
        with TagGadget.lock:
            TagGadget.log.append((self.id, "flush"))
        yield Text(f"flushed {self.id}")


@register("_test_hold")
class HoldGadget(Gadget):
    """Holds every Text until flush; reports the header it saw in a Result."""

    handles: ClassVar[tuple[type, ...]] = (Text, XmlHeader)

    def __init__(self, gadget_id: str, params: Any, context: Any) -> None:
        super().__init__(gadget_id, params, context)
        self.held: list[Any] = []
        self.times: list[Any] = []
        self.header: Any = context.header

    def process(self, message: Any) -> Iterator[Any]:
        if isinstance(message, XmlHeader):
            yield message
            return
        self.times.append(self.context.current_message_times())
        self.held.append(message)

    def flush(self) -> Iterator[Any]:
        yield from self.held
        self.held = []

    def describe_state(self) -> str | None:
        return f"{len(self.held)} texts held" if self.held else None


@register("_test_split")
class SplitGadget(Gadget):
    """Turns each Text into two Texts plus an internal (non-wire) object."""

    handles: ClassVar[tuple[type, ...]] = (Text,)

    def process(self, message: Any) -> Iterator[Any]:
        yield Text(message.text + "/a")
        yield object()
        if message.text == "fail":
            raise RuntimeError("half done")
        yield Text(message.text + "/b")


@register("_test_flushfail")
class FlushFailGadget(Gadget):
    """Passes Texts on; raises in flush."""

    handles: ClassVar[tuple[type, ...]] = (Text,)

    def flush(self) -> Iterator[Any]:
        raise RuntimeError("cannot flush")


def result_of(header: Any) -> Result:
    """A Result naming the matrix size of a parsed header (for assertions)."""
    m = header.encoding[0].encodedSpace.matrixSize
    return Result("header", {"x": m.x, "y": m.y})
