"""Fireworks chat completions (spec 003): `reasoning_content`, string efforts, an Anthropic-style `thinking`.

The request schema is closed (`additionalProperties: false`) and has no `stream_options`: Fireworks puts
usage in the final chunk of every stream on its own. Messages take no `name`. `perf_metrics` in the final
chunk is ignored. base_url includes `/inference/v1`.
"""

from gateway.canonical import CanonicalRequest
from gateway.upstreams.openai_compatible import Json, OpenAICompatibleAdapter
from gateway.upstreams.registry import register

MIN_THINKING_BUDGET = 1024  # the spec: budget_tokens "must be >= 1024"


@register
class FireworksAdapter(OpenAICompatibleAdapter):
    kind = "fireworks"
    label = "Fireworks"
    max_tokens_field = "max_tokens"
    reasoning_fields = ("reasoning_content",)
    history_reasoning_field = "reasoning_content"
    message_names = False
    completes_text = False  # its spec has chat completions only

    def stream_options(self) -> Json | None:
        return None

    def map_reasoning(self, request: CanonicalRequest, body: Json) -> None:
        # `thinking` and `reasoning_effort` may not be sent together.
        control = request.reasoning
        if control is None:
            return
        if control.enabled is False:
            body["reasoning_effort"] = "none"
        elif control.budget_tokens:
            body["thinking"] = {
                "type": "enabled",
                "budget_tokens": max(MIN_THINKING_BUDGET, control.budget_tokens),
            }
        elif control.effort:
            body["reasoning_effort"] = control.effort
        elif control.enabled:
            body["thinking"] = {"type": "enabled"}
