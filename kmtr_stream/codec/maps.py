"""msgpack payloads of ERROR (8) and RESULT (1500) messages.

Both are msgpack maps with an explicit ``schema_version``. Only plain data
travels: ``None``, bool, int, float, str, bytes, lists and str-keyed maps.
NumPy scalars are converted to Python numbers and real-valued NumPy arrays
to nested lists on encode; anything else (complex numbers, objects, msgpack
extension types) is rejected with a ProtocolError naming the offending key.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from kmtr_stream.errors import ProtocolError
from kmtr_stream.messages import RESULT_SCHEMA_VERSION, ErrorReport, Result

#: Keys the RESULT envelope reserves; a body must not use them.
RESULT_RESERVED_KEYS = frozenset({"schema_version", "kind"})
ERROR_KEYS = ("schema_version", "code", "message", "gadget", "message_index", "context")
#: Deepest nesting of lists/maps accepted on decode (bounds recursion on hostile input).
MAX_DEPTH = 32


def to_plain(value: Any, where: str, depth: int = 0) -> Any:
    """Return ``value`` as msgpack-ready plain data, converting NumPy scalars and arrays.

    Args:
        value: the value to convert.
        where: dotted path of the value, named in errors (e.g. ``"body.lvef"``).
        depth: current nesting depth.

    Raises:
        ProtocolError: the value (or something inside it) cannot travel as plain data.
    """
    if depth > MAX_DEPTH:
        raise ProtocolError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**64:
                raise ProtocolError(f"{where}: integer {value} does not fit 64 bits")
        return value
    if isinstance(value, np.generic):
        if np.iscomplexobj(value):
            raise ProtocolError(f"{where}: complex values cannot travel in msgpack maps")
        if isinstance(value, (np.bool_, np.integer, np.floating)):
            return value.item()
        raise ProtocolError(f"{where}: unsupported NumPy scalar of dtype {value.dtype}")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ProtocolError(
                f"{where}: NumPy array of dtype {value.dtype} cannot travel in msgpack maps"
            )
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ProtocolError(f"{where}: map key {k!r} is not a str")
            out[k] = to_plain(v, f"{where}.{k}", depth + 1)
        return out
    raise ProtocolError(f"{where}: value of type {type(value).__name__} cannot travel as msgpack")


def _check_plain(value: Any, where: str, depth: int = 0) -> None:
    """Raise ProtocolError unless a decoded value is plain data."""
    if depth > MAX_DEPTH:
        raise ProtocolError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ProtocolError(f"{where}: map key {k!r} is not a str")
            _check_plain(v, f"{where}.{k}", depth + 1)
        return
    raise ProtocolError(f"{where}: unexpected value of type {type(value).__name__}")


def _reject_ext(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension type {code} is not accepted")


def _pack(obj: dict[str, Any], what: str) -> bytes:
    try:
        packed: bytes = msgpack.packb(obj, use_bin_type=True)
        return packed
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode {what} as msgpack: {exc}") from None


def _unpack(payload: bytes | bytearray | memoryview, what: str) -> dict[str, Any]:
    try:
        obj = msgpack.unpackb(
            payload, raw=False, strict_map_key=True, ext_hook=_reject_ext, use_list=True
        )
    except ProtocolError:
        raise
    except Exception as exc:  # msgpack raises many unrelated types on malformed input
        raise ProtocolError(f"{what} payload is not valid msgpack: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} payload is a {type(obj).__name__}, expected a map")
    _check_plain(obj, what)
    version = obj.get("schema_version")
    if version != RESULT_SCHEMA_VERSION:
        raise ProtocolError(
            f"{what} schema_version {version!r} is not supported (expected {RESULT_SCHEMA_VERSION})"
        )
    return obj


def encode_error(report: ErrorReport) -> bytes:
    """msgpack bytes of an ERROR payload (without the length prefix)."""
    obj = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "code": report.code,
        "message": report.message,
        "gadget": report.gadget,
        "message_index": report.message_index,
        "context": to_plain(dict(report.context), "error.context"),
    }
    return _pack(obj, "ERROR")


def decode_error(payload: bytes | bytearray | memoryview) -> ErrorReport:
    """ErrorReport from msgpack bytes; ProtocolError when fields are missing or mistyped."""
    obj = _unpack(payload, "ERROR")
    extra = set(obj) - set(ERROR_KEYS)
    if extra:
        raise ProtocolError(f"ERROR payload has unknown keys {sorted(extra)}")
    code, message = obj.get("code"), obj.get("message")
    gadget, index = obj.get("gadget"), obj.get("message_index")
    context = obj.get("context", {})
    if not isinstance(code, str) or not isinstance(message, str):
        raise ProtocolError("ERROR payload needs str 'code' and 'message'")
    if gadget is not None and not isinstance(gadget, str):
        raise ProtocolError("ERROR payload 'gadget' must be a str or nil")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
        raise ProtocolError("ERROR payload 'message_index' must be an int or nil")
    if not isinstance(context, dict):
        raise ProtocolError("ERROR payload 'context' must be a map")
    return ErrorReport(code=code, message=message, gadget=gadget, message_index=index,
                       context=context)


def encode_result(result: Result) -> bytes:
    """msgpack bytes of a RESULT payload: ``{"schema_version", "kind", **body}``."""
    if not isinstance(result.kind, str):
        raise ProtocolError(f"RESULT kind must be a str, got {type(result.kind).__name__}")
    clash = RESULT_RESERVED_KEYS.intersection(result.body)
    if clash:
        raise ProtocolError(f"RESULT body must not use the reserved keys {sorted(clash)}")
    body = to_plain(dict(result.body), f"result[{result.kind}]")
    return _pack({"schema_version": RESULT_SCHEMA_VERSION, "kind": result.kind, **body}, "RESULT")


def decode_result(payload: bytes | bytearray | memoryview) -> Result:
    """Result from msgpack bytes; ProtocolError when the envelope is invalid."""
    obj = _unpack(payload, "RESULT")
    kind = obj.pop("kind", None)
    obj.pop("schema_version")
    if not isinstance(kind, str):
        raise ProtocolError("RESULT payload needs a str 'kind'")
    return Result(kind=kind, body=obj)
