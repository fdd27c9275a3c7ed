"""Cerebras Inference (spec 000): OpenAI chat with its own reasoning fields and errors inside the stream.

Reasoning is asked for as `reasoning_format: parsed`, so it streams in the delta's `reasoning` field rather
than inline in `content`; off is `disable_reasoning`. Errors may arrive mid-stream as an
`ErrorChunkResponse` (`{"status_code", "error": {...}}`), which the base maps by its status and body.
Chunks carry `time_info`, which the canonical model has no place for, so it is ignored.
"""

from gateway.canonical import CanonicalRequest
from gateway.upstreams.openai_compatible import Json, OpenAICompatibleAdapter, effort_for_budget
from gateway.upstreams.registry import register


@register
class CerebrasAdapter(OpenAICompatibleAdapter):
    kind = "cerebras"
    label = "Cerebras"
    max_tokens_field = "max_completion_tokens"
    reasoning_fields = ("reasoning",)
    history_reasoning_field = "reasoning"
    understood_anthropic_fields = frozenset()  # its API has no top_k

    def map_reasoning(self, request: CanonicalRequest, body: Json) -> None:
        body["reasoning_format"] = "parsed"
        control = request.reasoning
        if control is None:
            return
        if control.enabled is False:
            body["disable_reasoning"] = True
        elif control.effort:
            body["reasoning_effort"] = control.effort
        elif control.budget_tokens:  # Cerebras takes no budget: the nearest effort instead
            body["reasoning_effort"] = effort_for_budget(control.budget_tokens)
