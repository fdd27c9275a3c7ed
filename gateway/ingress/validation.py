"""JSON-schema validation whose errors name the field (`messages[0].role: …`)."""

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from gateway.errors import ErrorCode, GatewayError

SCHEMAS = Path(__file__).parent / "schemas"


def load_validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    return Draft202012Validator(schema)


def field_path(error: ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def validate_or_raise(validator: Draft202012Validator, body: object) -> None:
    error = best_match(validator.iter_errors(body))
    if error is None:
        return
    # For anyOf/oneOf failures, the most specific sub-error names the real problem.
    while error.context:
        error = best_match(error.context)
    field = field_path(error) or None
    message = error.message if len(error.message) < 300 else error.message[:300] + "…"
    raise GatewayError(ErrorCode.INVALID_REQUEST, f"{field}: {message}" if field else message, param=field)


def refuse_server_tools(plugins: list[dict[str, Any]] | None) -> None:
    """Server tools (web_search, web_fetch, pdf, datetime, image) are not built yet: refused, not ignored."""
    if plugins:
        raise GatewayError(
            ErrorCode.INVALID_REQUEST,
            f"plugins[0].id: the server tool {plugins[0]['id']!r} is not available yet",
            param="plugins[0].id",
        )
