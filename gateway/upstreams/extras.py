"""Provider-only fields (`CanonicalRequest.extra`) on their way to an upstream dialect: the one rule.

A field the ingress format did not map is sent only to an upstream whose API has it:
- within a family (Chat Completions, Responses or legacy completions in, an OpenAI-style provider out;
  Messages in, Anthropic out), a dialect that declares its spec's request fields (each adapter's
  `chat_fields` / `completion_fields`, data read from its spec) gets those of them it has; a dialect that
  declares none (the generic `openai_compatible`, `anthropic`) gets every field: the provider decides;
- across families only the fields both APIs have with one meaning cross (`top_k`), to a dialect that has it.
A field the target lacks is dropped when dropping it cannot change the answer (storage, cache, tier and
speed hints, metrics, neutral values), otherwise refused with `invalid_request` naming it: never dropped
silently, and never sent to a provider whose closed schema would answer 400 (docs/translation.md).
"""

from typing import Any, Literal

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest
from gateway.upstreams.base import UpstreamError

Family = Literal["openai", "anthropic"]
FAMILY_NAMES: dict[Family, str] = {
    "openai": "the OpenAI Chat Completions API",
    "anthropic": "the Anthropic Messages API",
}

# Hints about storage, caching, tiers, speed, metrics and end users: the answer is the same without them.
HARMLESS: dict[Family, frozenset[str]] = {
    "openai": frozenset(
        {
            "store",
            "metadata",
            "prompt_cache_key",
            "prompt_cache_isolation_key",  # Fireworks: which cache entries a request may share
            "service_tier",
            "safety_identifier",
            "stream_options",
            "prediction",  # predicted output: it speeds decoding up, the output is the same
            "perf_metrics_in_response",  # Fireworks: timings beside the answer
        }
    ),
    "anthropic": frozenset({"service_tier"}),
}
# Values that ask for nothing beyond the default.
NEUTRAL: dict[str, Any] = {
    "n": 1,
    "logprobs": False,
    "top_logprobs": 0,
    "frequency_penalty": 0,
    "presence_penalty": 0,
}
# The fields both families have with the same meaning: they cross to a dialect that has them.
SAME_MEANING = frozenset({"top_k"})


def field_set(names: str) -> frozenset[str]:
    """A dialect's request fields, written as its spec lists them (whitespace-separated)."""
    return frozenset(names.split())


def extras_for(
    request: CanonicalRequest, *, family: Family, fields: frozenset[str] | None, label: str
) -> dict[str, Any]:
    """The request's extra fields as an upstream of `family` gets them; raises for one it cannot take.

    `fields`: the top-level request fields of the dialect's spec (None: the dialect takes any field of its
    family); `label`: the dialect's name, for the refusal.
    """
    sent: dict[str, Any] = {}
    source = request.extra_family
    for name, value in request.extra.items():
        if (source == family or name in SAME_MEANING) and (fields is None or name in fields):
            sent[name] = value
        elif name in HARMLESS[source] or (name in NEUTRAL and value == NEUTRAL[name]):
            continue
        elif source == family:
            raise UpstreamError(
                ErrorCode.INVALID_REQUEST,
                f"{name}: this model's provider ({label}) has no such field; remove it or choose a model "
                "served by another provider",
                param=name,
            )
        else:
            raise UpstreamError(
                ErrorCode.INVALID_REQUEST,
                f"{name}: this model's provider speaks {FAMILY_NAMES[family]}, which has no equivalent "
                "of this field; remove it or choose a model served by another provider",
                param=name,
            )
    return sent
