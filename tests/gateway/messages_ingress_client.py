"""The official Anthropic SDK as a client of POST /api/v1/messages, and the request pieces the
test_messages_ingress*.py files share."""

import anthropic

KEY = "test-key"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def client_for(url: str, key: str) -> anthropic.Anthropic:
    # The SDK appends /v1/messages to its base URL.
    return anthropic.Anthropic(base_url=f"{url}/api", api_key=key, max_retries=0)


def user(text: str) -> dict:
    return {"role": "user", "content": text}
