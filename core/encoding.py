"""The one JSON encoding the project sends and stores: compact, UTF-8, key order as built."""

import json
import re
from typing import Any

import orjson


def compact_json(payload: Any) -> bytes:
    """orjson's bytes (several times faster); what it refuses — an integer past 64 bits, a non-string key,
    a lone surrogate — the standard library writes, or refuses, as ever."""
    try:
        return orjson.dumps(payload)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# orjson reads an integer past 64 bits as a float; the standard library keeps it exact.
LONG_NUMBER = re.compile(rb"\d{19}")
_LONG_NUMBER_TEXT = re.compile(r"\d{19}")


def read_json(data: str | bytes) -> Any:
    """The standard library's reading of JSON, at orjson's speed where they agree: what orjson refuses (NaN,
    an infinite number, half a surrogate pair) or would read inexactly (19+ digits) goes to the standard
    library. Raises ValueError for what is not JSON."""
    long_number = LONG_NUMBER if isinstance(data, bytes) else _LONG_NUMBER_TEXT
    if not long_number.search(data):  # type: ignore[arg-type]
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
