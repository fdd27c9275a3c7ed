"""The sandbox's plain answers: a short echo, or — asked for something long — a long text streamed until
max_tokens, so the playground's streaming and Stop can be tried offline; as JSON when a response format asks,
so structured output can be tried too (the SDKs' `parse` helpers through the gateway)."""

import asyncio
import json

import jsonschema
import openai
import pydantic

from gateway.canonical import CanonicalRequest, Finish, Message, ResponseFormat, TextBlock, TextDelta, Usage
from gateway.upstreams.base import ProviderInfo, RouteInfo
from gateway.upstreams.mock import MockAdapter

ROUTE = RouteInfo(
    ProviderInfo("sandbox", "mock", "", "", 5.0), "sandbox", {"first_token_ms": 0, "tokens_per_second": 1e6}
)


def answer(text: str, max_tokens: int | None, response_format: ResponseFormat | None = None) -> list:
    request = CanonicalRequest(
        "sandbox",
        [Message("user", [TextBlock(text)])],
        max_tokens=max_tokens,
        response_format=response_format,
    )

    async def go():
        return [event async for event in MockAdapter().stream(request, ROUTE, None)]

    return asyncio.run(go())


def test_a_short_question_gets_a_short_echo():
    events = answer("Say hi", max_tokens=1000)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Hello from the HyperInfer sandbox. You said: Say hi"
    assert [e.reason for e in events if isinstance(e, Finish)] == ["stop"]


def test_asked_for_a_long_story_it_streams_until_max_tokens_and_counts_every_piece():
    events = answer("Tell me a long story", max_tokens=300)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 300
    assert [e.reason for e in events if isinstance(e, Finish)] == ["length"]
    assert [e.completion_tokens for e in events if isinstance(e, Usage)] == [300]
    assert "".join(d.text for d in deltas).startswith("This is a long answer from the HyperInfer sandbox")


def answered_text(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_asked_for_a_json_object_it_answers_one():
    events = answer("Say hi", max_tokens=1000, response_format=ResponseFormat("json_object"))
    assert json.loads(answered_text(events)) == {
        "answer": "Hello from the HyperInfer sandbox. You said: Say hi"
    }


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "score": {"type": ["number", "null"]},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
        "kind": {"enum": ["person", "robot"]},
        "alive": {"type": "boolean"},
        "pet": {"anyOf": [{"$ref": "#/$defs/pet"}, {"type": "null"}]},
    },
    "required": ["name", "age", "score", "tags", "kind", "alive", "pet"],
    "additionalProperties": False,
    "$defs": {
        "tag": {"type": "string"},
        "pet": {"type": "object", "properties": {"legs": {"type": "integer"}}, "required": ["legs"]},
    },
}


def test_asked_for_a_json_schema_it_answers_an_instance_of_it():
    events = answer(
        "Say hi", max_tokens=1000, response_format=ResponseFormat("json_schema", "person", SCHEMA)
    )
    instance = json.loads(answered_text(events))
    jsonschema.validate(instance, SCHEMA)
    assert instance["name"] == "Hello from the HyperInfer sandbox. You said: Say hi"


class Person(pydantic.BaseModel):
    name: str
    age: int
    friends: list[str]


def test_the_openai_sdks_parse_helpers_get_their_objects_through_the_gateway(gateway_url, funded_key):
    _, key = funded_key
    client = openai.OpenAI(base_url=f"{gateway_url}/api/v1", api_key=key, max_retries=0)
    ask = [{"role": "user", "content": "Who?"}]
    chat = client.chat.completions.parse(model="hyperinfer/sandbox", messages=ask, response_format=Person)
    assert isinstance(chat.choices[0].message.parsed, Person)
    response = client.responses.parse(model="hyperinfer/sandbox", input="Who?", text_format=Person)
    assert isinstance(response.output_parsed, Person)
    assert response.output_parsed.friends == ["Hello from the HyperInfer sandbox. You said: Who?"]
