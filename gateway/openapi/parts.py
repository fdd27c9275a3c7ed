"""The pieces every operation builder of /openapi.json is made of (gateway/openapi/)."""

import json
from typing import Any, NamedTuple

from gateway.ingress.validation import SCHEMAS

ERROR_DESCRIPTION = (
    "Error in this ingress format's native envelope, with the stable taxonomy `code` (002-R7). "
    "See the ErrorCode schema for the code → HTTP status mapping."
)


class Operation(NamedTuple):
    path: str
    method: str  # lower case, as OpenAPI spells it
    operation: dict[str, Any]


def schema_file(name: str) -> dict[str, Any]:
    """A schema from gateway/ingress/schemas/, read from the file the validators load."""
    return json.loads((SCHEMAS / name).read_text())


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_response(envelope: str = "OpenAIError") -> dict[str, Any]:
    return json_response(ERROR_DESCRIPTION, ref(envelope))


# Request examples against the offline sandbox model every catalog ships: they run as written.
SANDBOX = "hyperinfer/sandbox"

INTEGER = {"type": "integer"}
STRING = {"type": "string"}


def sse_event(description: str, names: list[str] | None) -> dict[str, Any]:
    """One server-sent event, as OpenAPI 3.1 tools read an event-stream schema (schemathesis among them):
    its `event` name and its `data`. The spec's prose about the whole stream stays the description."""
    event = {"type": "string", "enum": names} if names else {"const": "message"}
    return {
        "type": "object",
        "description": description,
        "required": ["data"],
        "properties": {"event": event, "data": {"type": "string", "minLength": 1}},
    }


def request_body(schema_name: str, example: dict[str, Any]) -> dict[str, Any]:
    """A gateway request body: the validator's own schema, and the example whole and streamed."""
    return {
        "schema": schema_file(schema_name),
        "examples": {
            "whole": {"summary": "One answer", "value": example},
            "streamed": {"summary": "Streamed (server-sent events)", "value": {**example, "stream": True}},
        },
    }
