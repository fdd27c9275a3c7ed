"""Ready-to-copy requests for a model page: one per API format the gateway speaks, each with the model's
slug and the site's own URL filled in. The key is read from HYPERINFER_API_KEY, never written into them."""

import json
from dataclasses import dataclass

KEY_VARIABLE = "HYPERINFER_API_KEY"
PROMPT = "Hello! What can you do?"


@dataclass(frozen=True, slots=True)
class Snippet:
    key: str  # the tab's id: curl, openai, anthropic
    title: str
    language: str
    endpoints: tuple[str, ...]
    code: str


def _curl(*, slug: str, site_url: str) -> str:
    message = json.dumps({"role": "user", "content": PROMPT})
    return (
        f"curl {site_url}/api/v1/chat/completions \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        "  -d '{\n"
        f'    "model": {json.dumps(slug)},\n'
        f'    "messages": [{message}]\n'
        "  }'\n"
    )


def _openai(*, slug: str, site_url: str) -> str:
    model, base_url, prompt = json.dumps(slug), json.dumps(f"{site_url}/api/v1"), json.dumps(PROMPT)
    return f"""import os

from openai import OpenAI

client = OpenAI(base_url={base_url}, api_key=os.environ["{KEY_VARIABLE}"])

# Chat Completions: POST /api/v1/chat/completions
completion = client.chat.completions.create(
    model={model},
    messages=[{{"role": "user", "content": {prompt}}}],
)
print(completion.choices[0].message.content)

# Responses: POST /api/v1/responses
response = client.responses.create(model={model}, input={prompt})
print(response.output_text)
"""


def _anthropic(*, slug: str, site_url: str, max_tokens: int) -> str:
    model, base_url, prompt = json.dumps(slug), json.dumps(f"{site_url}/api"), json.dumps(PROMPT)
    return f"""import os

import anthropic

# The SDK adds /v1: this posts to /api/v1/messages.
client = anthropic.Anthropic(base_url={base_url}, api_key=os.environ["{KEY_VARIABLE}"])

message = client.messages.create(
    model={model},
    max_tokens={max_tokens},
    messages=[{{"role": "user", "content": {prompt}}}],
)
print("".join(block.text for block in message.content if block.type == "text"))
"""


EMBED_TEXTS = ["The cat sat on the mat", "A cat sat on a mat"]


def _curl_embeddings(*, slug: str, site_url: str) -> str:
    return (
        f"curl {site_url}/api/v1/embeddings \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f'  -d \'{{"model": {json.dumps(slug)}, "input": {json.dumps(EMBED_TEXTS)}}}\'\n'
    )


def _openai_embeddings(*, slug: str, site_url: str) -> str:
    model, base_url = json.dumps(slug), json.dumps(f"{site_url}/api/v1")
    return f"""import os

from openai import OpenAI

client = OpenAI(base_url={base_url}, api_key=os.environ["{KEY_VARIABLE}"])

# Embeddings: POST /api/v1/embeddings
result = client.embeddings.create(model={model}, input={json.dumps(EMBED_TEXTS)})
first, second = (item.embedding for item in result.data)
print(len(first), "numbers each; cosine similarity", round(sum(a * b for a, b in zip(first, second)), 3))
"""


def request_snippets(
    *, slug: str, site_url: str, max_output_tokens: int, kind: str = "chat"
) -> list[Snippet]:
    """curl, the OpenAI Python SDK and the Anthropic Python SDK (for an embedding model: curl and the OpenAI
    SDK's embeddings, which Anthropic's API has none of). `site_url` has no trailing slash."""
    site_url = site_url.rstrip("/")
    if kind == "embedding":
        endpoint = ("POST /api/v1/embeddings",)
        return [
            Snippet("curl", "curl", "shell", endpoint, _curl_embeddings(slug=slug, site_url=site_url)),
            Snippet(
                "openai",
                "OpenAI Python SDK",
                "python",
                endpoint,
                _openai_embeddings(slug=slug, site_url=site_url),
            ),
        ]
    return [
        Snippet(
            "curl", "curl", "shell", ("POST /api/v1/chat/completions",), _curl(slug=slug, site_url=site_url)
        ),
        Snippet(
            "openai",
            "OpenAI Python SDK",
            "python",
            ("POST /api/v1/chat/completions", "POST /api/v1/responses"),
            _openai(slug=slug, site_url=site_url),
        ),
        Snippet(
            "anthropic",
            "Anthropic Python SDK",
            "python",
            ("POST /api/v1/messages",),
            _anthropic(slug=slug, site_url=site_url, max_tokens=min(1024, max_output_tokens)),
        ),
    ]
