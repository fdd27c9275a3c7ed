"""JSON-schema validation whose errors name the field (`messages[0].role: …`)."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from core.errors import ApiError, ErrorCode
from gateway.canonical import CanonicalRequest, Effort, ReasoningControl, Role, ServerToolUse, ToolChoiceMode
from gateway.tools.registry import available_server_tools

SCHEMAS = Path(__file__).parent / "schemas"

# OpenAI's message roles (the schemas allow only these): `developer` is a system message.
_OPENAI_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
# OpenAI's string tool_choice values (the schemas allow only these).
_TOOL_CHOICE_MODES: dict[str, ToolChoiceMode] = {"auto": "auto", "none": "none", "required": "required"}


@dataclass(frozen=True, slots=True)
class RequestValidator:
    """One schema, two validators: the compiled one (jsonschema-rs, ~0.3 µs a request) answers whether a
    body is valid; the reference one (jsonschema, ~40 µs) runs only for an invalid body, to name the field
    in the error, and has the last word (a body it accepts is accepted)."""

    compiled: jsonschema_rs.Draft202012Validator
    reference: Draft202012Validator

    @property
    def schema(self) -> Any:
        return self.reference.schema


def load_validator(name: str) -> RequestValidator:
    schema = json.loads((SCHEMAS / name).read_text())
    # `format` is an annotation in draft 2020-12, as the reference validator treats it.
    compiled = jsonschema_rs.Draft202012Validator(schema, validate_formats=False)
    return RequestValidator(compiled=compiled, reference=Draft202012Validator(schema))


def field_path(error: ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _meant_branch(error: ValidationError) -> list[ValidationError]:
    """An anyOf/oneOf over objects told apart by their `type` const (content parts, input items): the errors
    of the branch whose `type` the object has. Without it, the closest branch by jsonschema's measure
    could be another kind's (a function_call item reported as a message missing its `role`)."""
    kind = error.instance.get("type") if isinstance(error.instance, dict) else None
    branches = error.validator_value if error.validator in ("anyOf", "oneOf") else None
    if kind is None or not isinstance(branches, list):
        return []
    for index, branch in enumerate(branches):
        properties = branch.get("properties") if isinstance(branch, dict) else None
        tag = properties.get("type") if isinstance(properties, dict) else None
        if isinstance(tag, dict) and "const" in tag and tag["const"] == kind:
            return [each for each in error.context if each.relative_schema_path[0] == index]
    return []


def _missing_property(error: ValidationError) -> str:
    """A missing required property's path (`messages`, `tools[0].function.name`), which the error's own path
    stops short of (it is the object's); "" for any other error."""
    if error.validator != "required" or not isinstance(error.instance, dict):
        return ""
    missing = [name for name in error.validator_value if name not in error.instance]
    # The one the message names ("'messages' is a required property"), when several are missing.
    name = next((each for each in missing if error.message.startswith(repr(each))), None)
    if name is None:
        return ""
    parent = field_path(error)
    return f"{parent}.{name}" if parent else name


def _compiled_accepts(validator: RequestValidator, body: object) -> bool:
    try:
        return validator.compiled.is_valid(body)
    except (ValueError, OverflowError):  # what it cannot represent (an integer past 64 bits, say)
        return False


def validate_or_raise(validator: RequestValidator, body: object) -> None:
    if _compiled_accepts(validator, body):
        return
    error = best_match(validator.reference.iter_errors(body))
    if error is None:
        return
    # For anyOf/oneOf failures, the most specific sub-error of the branch the body meant names the problem.
    while error.context:
        error = best_match(_meant_branch(error) or error.context)
    field = _missing_property(error) or field_path(error) or None
    message = error.message if len(error.message) < 300 else error.message[:300] + "…"
    raise ApiError(ErrorCode.INVALID_REQUEST, f"{field}: {message}" if field else message, param=field)


def openai_role(value: str) -> Role:
    """A validated OpenAI message role as the canonical one."""
    return _OPENAI_ROLES[value]


def tool_choice_mode(value: str) -> ToolChoiceMode:
    """A validated string tool_choice (auto, none, required) as the canonical mode."""
    return _TOOL_CHOICE_MODES[value]


Entries = list[tuple[int, dict[str, Any]]]  # server tool entries and their positions in the request's list


_EFFORTS: dict[str, Effort] = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}


def reasoning_control(effort: Any) -> ReasoningControl | None:
    """An OpenAI-style reasoning effort, as the schemas allow it: low / medium / high, and the extensions
    "none" (off) and "minimal" (the target's lowest); in Chat Completions also Fireworks' boolean (on / off)
    and integer (a reasoning budget in tokens) forms."""
    if effort is None:
        return None
    if isinstance(effort, bool):
        return ReasoningControl(enabled=effort)
    if isinstance(effort, int | float):  # JSON Schema's integers include 1.0
        return ReasoningControl(enabled=True, budget_tokens=int(effort))
    if effort == "none":
        return ReasoningControl(enabled=False)
    return ReasoningControl(effort=_EFFORTS[effort])


def server_tool_uses(entries: Entries, field: str, key: str) -> tuple[ServerToolUse, ...]:
    """The server tools a request switches on: `plugins` entries (`key` "id") or Responses built-in tools
    (`key` "type", entries already picked out). Each entry's other fields are the tool's options; a tool
    this deployment does not offer, or one listed twice, is refused naming the entry."""
    if not entries:
        return ()
    offered = available_server_tools()
    uses: dict[str, ServerToolUse] = {}
    for position, entry in entries:
        name = entry[key]
        where = f"{field}[{position}].{key}"
        if name not in offered:
            _refuse(where, f"the server tool {name!r} is not configured on this deployment")
        if name in uses:
            _refuse(where, f"the server tool {name!r} is listed twice")
        options = {k: v for k, v in entry.items() if k not in (key, "events")}
        uses[name] = ServerToolUse(name, options)
    return tuple(uses.values())


def wants_tool_events(body: dict[str, Any], entries: Entries) -> bool:
    """Tool events are asked for by `hi_tool_events: true`, or by any server tool entry's `events: true`."""
    return bool(body.get("hi_tool_events")) or any(entry.get("events") is True for _, entry in entries)


def plugins(body: dict[str, Any]) -> Entries:
    """The `plugins` entries (Chat Completions, Messages) with their positions."""
    return list(enumerate(body.get("plugins") or []))


def refuse_unrenderable(body: dict[str, Any]) -> None:
    """Output the gateway cannot give back (it renders one text answer): refused, never billed and dropped."""
    if body.get("n") not in (None, 1):
        _refuse("n", "the gateway returns one choice per request; send several requests instead")
    no_logprobs = "log probabilities are not available through the gateway"
    for field in ("logprobs", "top_logprobs"):
        if body.get(field):
            _refuse(field, no_logprobs)
    include = body.get("include")
    if include is not None and not isinstance(include, list):
        _refuse("include", "must be an array")
    if "message.output_text.logprobs" in (include or []):
        _refuse("include", no_logprobs)
    modalities = body.get("modalities")
    if modalities is not None and not isinstance(modalities, list):
        _refuse("modalities", "must be an array")
    if body.get("audio") is not None or any(m != "text" for m in modalities or []):
        _refuse("modalities", "only text output is available through the gateway")


def refuse_unanswerable_tool_choice(request: CanonicalRequest) -> None:
    """A `tool_choice` that asks for a call no tool can make: refused, as OpenAI and Anthropic refuse it,
    rather than left to each upstream (one ignores it, one calls another tool, llama.cpp fails with a 500)."""
    choice = request.tool_choice
    if choice is None or choice.mode in ("auto", "none"):
        return
    names = [tool.name for tool in request.tools] + [use.name for use in request.server_tools]
    if not names:
        _refuse("tool_choice", f"{choice.name or choice.mode!r} asks for a tool call, and no tools are given")
    if choice.mode == "tool" and choice.name not in names:
        _refuse("tool_choice", f"names {choice.name!r}, which is not among the tools ({', '.join(names)})")


def _refuse(field: str, problem: str) -> None:
    raise ApiError(ErrorCode.INVALID_REQUEST, f"{field}: {problem}", param=field)


def token_count(value: Any) -> Any:
    """A token count as an int: JSON Schema's `integer` admits `476603.0`, the meters take whole ints."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
