"""What every cell of the any-to-any matrix (tests/gateway/test_any_to_any.py) says, and what a client sees of
it whatever its format: the question, the tool call and its result, and the answer as the SDK read it."""

from dataclasses import dataclass
from typing import Any

KEY = "test-key"
MODEL = "matrix/model"
QUESTION = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris today."
THOUGHT = "The user wants the weather; I should answer briefly."
TOOL_RESULT = "sunny, 24 C"
WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CALL_ID = "call_weather_1"
CALL_ARGUMENTS = {"city": "Paris"}


# --- What a client sees, whatever its format --------------------------------------------------------
@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Answer:
    text: str
    reasoning: str = ""
    tool_calls: list[ToolCall] | None = None
    request_id: str = ""


@dataclass
class Streamed:
    events: list[Any]  # every event the SDK yielded, in order
    deltas: Answer  # what the streamed deltas join to
    final: Answer  # the SDK's accumulated result (chat: the chunks folded by hand, as the SDK has no fold)
    output_tokens: int
    stop: str  # chat: finish_reason; responses: the final status; messages: stop_reason
