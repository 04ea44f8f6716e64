"""Standard-MRD forms of k-MTR results and errors: what stock MRD clients understand.

Stock MRD clients (python-ismrmrd-server's ``client.py``, Gadgetron's) know
message ids 1-5, 1008, 1022 and 1026 only and stop at any other. In the
standard results mode nothing else goes out:

- a RESULT becomes a TEXT holding one JSON object, the same map as the
  msgpack payload: ``{"schema_version": 1, "kind": ..., **body}``. Bytes
  appear as ``{"$bytes_b64": "..."}``; NaN and infinities (which JSON lacks)
  as ``null``.
- an ERROR becomes a TEXT in the python-ismrmrd-server logging convention
  (``send_logging``): the level padded to 8 characters, a space, then
  ``[code] message | {details}``, the details being a JSON object of the
  gadget, message index and context the error names (``{}`` when none).
  Those clients log it as they log every TEXT.

``parse_text`` reads such TEXTs back, so a client handles both modes alike;
any server's TEXT at level ERROR or CRITICAL (python-ismrmrd-server sends its
tracebacks so) reads as an ``ErrorReport`` with code ``"server"``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

from kmtr_stream.codec.maps import RESULT_RESERVED_KEYS, to_plain
from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import RESULT_SCHEMA_VERSION, ErrorReport, MessageId, Result, Text

#: Results modes of a stream: standard MRD only, or k-MTR's msgpack RESULT/ERROR ids.
STANDARD, MSGPACK = "standard", "msgpack"
RESULTS_MODES: tuple[str, ...] = (STANDARD, MSGPACK)
#: Message ids stock MRD clients know; nothing else leaves a standard-mode stream.
STANDARD_IDS = frozenset({
    MessageId.CONFIG_FILE, MessageId.CONFIG_TEXT, MessageId.HEADER, MessageId.CLOSE,
    MessageId.TEXT, MessageId.ACQUISITION, MessageId.IMAGE, MessageId.WAVEFORM,
})
#: Width the python-ismrmrd-server pads logging levels to.
LEVEL_WIDTH = 8
ERROR_LEVELS = ("ERROR", "CRITICAL")
BYTES_KEY = "$bytes_b64"
_DETAILS_SEP = " | "
_CODE = re.compile(r"\[([A-Za-z0-9_.-]*)\] ")


def jsonable(value: Any) -> Any:
    """Plain data (``codec.maps.to_plain`` output) as JSON-ready data.

    Bytes become ``{"$bytes_b64": ...}`` and non-finite floats ``None``.
    """
    if isinstance(value, bytes):
        return {BYTES_KEY: base64.b64encode(value).decode("ascii")}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def _unjson(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {BYTES_KEY} and isinstance(value[BYTES_KEY], str):
            return base64.b64decode(value[BYTES_KEY])
        return {k: _unjson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact strict JSON of plain data (see ``jsonable``)."""
    return json.dumps(jsonable(value), separators=(",", ":"), allow_nan=False)


def result_text(result: Result) -> Text:
    """TEXT form of a RESULT: the msgpack map as one JSON object.

    Raises:
        ProtocolError: the body is not plain data or uses a reserved key.
    """
    clash = RESULT_RESERVED_KEYS.intersection(result.body)
    if clash:
        raise ProtocolError(f"RESULT body must not use the reserved keys {sorted(clash)}")
    body = to_plain(dict(result.body), f"result[{result.kind}]")
    return Text(dumps({"schema_version": RESULT_SCHEMA_VERSION, "kind": str(result.kind),
                       **body}))


def log_line(level: str, message: str) -> Text:
    """A TEXT in the python-ismrmrd-server logging convention (``"WARNING  ..."``)."""
    return Text(f"{level:<{LEVEL_WIDTH}} {message}".replace("\0", "\\0"))


def error_text(report: ErrorReport) -> Text:
    """TEXT form of an ERROR: ``"ERROR    [code] message | {details}"``.

    Codes are short identifiers (``KmtrError.code``); other characters become ``_``.
    """
    code = re.sub(r"[^A-Za-z0-9_.-]", "_", report.code)
    details = {"gadget": report.gadget, "message_index": report.message_index,
               "context": to_plain(dict(report.context), "error.context")}
    details = {k: v for k, v in details.items() if v not in (None, {})}
    # Always there, so a message that itself contains " | {" still reads back whole.
    return log_line("ERROR", f"[{code}] {report.message}{_DETAILS_SEP}{dumps(details)}")


def to_standard(msg: Any) -> Any:
    """``msg`` in standard-MRD form: RESULT and ERROR as TEXT, everything else unchanged."""
    kind = type(msg)
    if kind is Result:
        return result_text(msg)
    if kind is ErrorReport:
        return error_text(msg)
    return msg


def _result_of(text: str) -> Result | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("schema_version") != RESULT_SCHEMA_VERSION:
        return None
    kind = obj.pop("kind", None)
    if not isinstance(kind, str):
        return None
    obj.pop("schema_version")
    return Result(kind=kind, body=_unjson(obj))


def _split_details(rest: str) -> tuple[str, dict[str, Any]]:
    """``message | {details}`` -> (message, details); ``(rest, {})`` without details.

    The details are the leftmost separator whose whole remainder is one JSON object:
    the message and the details' own strings may both contain the separator.
    """
    start = rest.find(_DETAILS_SEP)
    while start >= 0:
        tail = rest[start + len(_DETAILS_SEP):]
        if tail.startswith("{"):
            try:
                details = json.loads(tail)
            except ValueError:
                details = None
            if isinstance(details, dict):
                return rest[:start], details
        start = rest.find(_DETAILS_SEP, start + 1)
    return rest, {}


def _error_of(rest: str) -> ErrorReport:
    code = "server"
    match = _CODE.match(rest)
    if match:
        code, rest = match.group(1), rest[match.end():]
    message, details = _split_details(rest)
    gadget, index = details.get("gadget"), details.get("message_index")
    context = details.get("context", {})
    return ErrorReport(
        code=code,
        message=message,
        gadget=gadget if isinstance(gadget, str) else None,
        message_index=index if isinstance(index, int) and not isinstance(index, bool) else None,
        context=_unjson(context) if isinstance(context, dict) else {},
    )


def parse_text(msg: Text) -> Text | Result | ErrorReport:
    """A TEXT read back: a k-MTR JSON result, an ERROR-level log line, or plain text."""
    text = msg.text
    if text.startswith("{"):
        result = _result_of(text)
        if result is not None:
            return result
    level, sep, rest = text.partition(" ")
    if sep and level in ERROR_LEVELS:
        return _error_of(rest.lstrip(" "))
    return msg
