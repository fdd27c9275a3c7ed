"""The one JSON encoding the project sends and stores: compact, UTF-8, key order as built."""

import json
from typing import Any


def compact_json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
