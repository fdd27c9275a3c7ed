"""`POST {base_url}/embeddings` in OpenAI's shape, for the OpenAI-compatible dialects that have it
(openai_compatible, llamacpp): what their adapters' `embed` calls.

Measured against llama-cpp-python 0.3.36 (`--embedding true`) with SmolLM2-135M, a causal model without a
pooling layer: each `embedding` is then a list of per-token vectors, not one vector. Such an answer is
mean-pooled into one vector and scaled to length 1 (as OpenAI's embeddings are), so every model answers
one vector per input.
"""

import math
from collections.abc import Sequence
from typing import Any

from core.encoding import compact_json
from core.errors import ErrorCode
from gateway.upstreams.base import Embedded, RouteInfo, UpstreamError
from gateway.upstreams.http1 import HttpError, UpstreamClient
from gateway.upstreams.openai_errors import http_failure


async def openai_embeddings(
    texts: Sequence[str],
    route: RouteInfo,
    client: UpstreamClient,
    headers: dict[str, str],
    *,
    dimensions: int | None,
) -> Embedded:
    body: dict[str, Any] = {"model": route.upstream_model_id, "input": list(texts)}
    if dimensions is not None:
        body["dimensions"] = dimensions
    url = f"{route.provider.base_url.rstrip('/')}/embeddings"
    slug = route.provider.slug
    try:
        headers = {**headers, "Content-Type": "application/json"}
        seconds = route.provider.timeout_seconds
        async with client.post(url, compact_json(body), headers, timeout=seconds) as response:
            if response.status >= 400:
                text = await response.text(errors="replace")
                raise http_failure(slug, response.status, text, response.headers.get("retry-after"))
            answer = await response.json()
    except TimeoutError as exc:
        raise UpstreamError.provider_side(ErrorCode.PROVIDER_TIMEOUT, f"{slug}: timed out") from exc
    except (HttpError, ValueError) as exc:
        detail = f"{slug}: {type(exc).__name__}: {exc!r}"
        raise UpstreamError.provider_side(ErrorCode.PROVIDER_UNAVAILABLE, detail) from exc
    return _parsed(answer, len(texts), slug)


def _parsed(answer: Any, count: int, slug: str) -> Embedded:
    try:
        items = sorted(answer["data"], key=lambda item: item.get("index", 0))
        vectors = [one_vector(item["embedding"]) for item in items]
        tokens = (answer.get("usage") or {}).get("prompt_tokens")
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        detail = f"{slug}: malformed embeddings answer ({exc!r})"
        raise UpstreamError.provider_side(ErrorCode.PROVIDER_UNAVAILABLE, detail) from exc
    if len(vectors) != count:
        detail = f"{slug}: {len(vectors)} embeddings for {count} inputs"
        raise UpstreamError.provider_side(ErrorCode.PROVIDER_UNAVAILABLE, detail)
    return Embedded(vectors, tokens if isinstance(tokens, int) and tokens >= 0 else None)


def one_vector(embedding: Any) -> list[float]:
    """A vector as it came, or per-token vectors (a model without pooling) mean-pooled to unit length."""
    if not isinstance(embedding, list) or not embedding:
        raise ValueError("an embedding is a non-empty list")
    if not isinstance(embedding[0], list):
        return [float(value) for value in embedding]
    size = len(embedding[0])
    if any(len(token) != size for token in embedding):
        raise ValueError("per-token vectors of different sizes")
    mean = [sum(float(token[i]) for token in embedding) / len(embedding) for i in range(size)]
    return unit_length(mean)


def unit_length(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(value * value for value in vector))
    return vector if norm == 0 else [value / norm for value in vector]
