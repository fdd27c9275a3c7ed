"""Provider-only fields (`CanonicalRequest.extra`) on their way to an upstream dialect.

A field the ingress format did not map reaches an upstream of the same family untouched (Chat Completions
or Responses in, an OpenAI-compatible provider out; Messages in, Anthropic out): the provider decides what
it means. Across families a field means nothing to the target, so each one is either
- sent, when the target dialect has a field of that name and meaning (`top_k`: see each adapter),
- dropped, when dropping it cannot change the answer (storage, cache and tier hints, neutral values), or
- refused with `invalid_request` naming it, never dropped silently (docs/translation.md has the lists).
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

# Hints about storage, caching, tiers and end users: the answer is the same without them.
HARMLESS: dict[Family, frozenset[str]] = {
    "openai": frozenset(
        {"store", "metadata", "prompt_cache_key", "service_tier", "safety_identifier", "stream_options"}
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


def extras_for(request: CanonicalRequest, *, family: Family, understood: frozenset[str]) -> dict[str, Any]:
    """The request's extra fields as an upstream of `family` gets them; raises for one it cannot take.

    `understood`: the other family's field names this dialect takes with the same meaning.
    """
    if request.extra_family == family:
        return dict(request.extra)
    sent: dict[str, Any] = {}
    for name, value in request.extra.items():
        if name in understood:
            sent[name] = value
        elif name in HARMLESS[request.extra_family] or (name in NEUTRAL and value == NEUTRAL[name]):
            continue
        else:
            raise UpstreamError(
                ErrorCode.INVALID_REQUEST,
                f"{name}: this model's provider speaks {FAMILY_NAMES[family]}, which has no equivalent "
                "of this field; remove it or choose a model served by another provider",
                param=name,
            )
    return sent
