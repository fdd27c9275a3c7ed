"""Fireworks chat completions (spec 003): `reasoning_content`, string efforts, an Anthropic-style `thinking`.

The request schema is closed (`additionalProperties: false`: the fields below) and has no `stream_options`:
Fireworks puts usage in the final chunk of every stream on its own. Messages take no `name`. Every request
asks for `perf_metrics_in_response` (a few numbers in the final chunk: cheap), which become the answer's
provider metadata; a client's own `perf_metrics_in_response: false` wins. base_url includes `/inference/v1`.
"""

from gateway.canonical import CanonicalRequest
from gateway.upstreams.base import RouteInfo
from gateway.upstreams.extras import field_set
from gateway.upstreams.openai_compatible import Json, OpenAICompatibleAdapter
from gateway.upstreams.openai_events import StreamState
from gateway.upstreams.registry import register

MIN_THINKING_BUDGET = 1024  # the spec: budget_tokens "must be >= 1024"
# ChatCompletionRequest (spec 003).
CHAT_FIELDS = field_set(
    """
    context_length_exceeded_behavior echo echo_last frequency_penalty function_call functions ignore_eos
    logit_bias logprobs max_completion_tokens max_tokens messages metadata min_p mirostat_lr mirostat_target
    model n parallel_tool_calls perf_metrics_in_response prediction presence_penalty
    prompt_cache_isolation_key prompt_truncate_len raw_output reasoning_effort reasoning_history
    repetition_penalty response_format
    return_token_ids seed speculation stop stream temperature thinking tool_choice tools top_k top_logprobs
    top_p typical_p user
    """
)


@register
class FireworksAdapter(OpenAICompatibleAdapter):
    kind = "fireworks"
    label = "Fireworks"
    max_tokens_field = "max_tokens"
    reasoning_fields = ("reasoning_content",)
    history_reasoning_field = "reasoning_content"
    message_names = False
    completes_text = serves_embeddings = False  # its spec has chat completions only
    chat_fields = CHAT_FIELDS
    efforts = ("low", "medium", "high")

    def stream_options(self) -> Json | None:
        return None

    def build_body(self, request: CanonicalRequest, route: RouteInfo) -> Json:
        body = super().build_body(request, route)
        body.setdefault("perf_metrics_in_response", True)
        return body

    def map_reasoning(self, request: CanonicalRequest, body: Json) -> None:
        # `thinking` and `reasoning_effort` may not be sent together.
        control = request.reasoning
        if control is None:
            return
        if control.enabled is False:
            body["reasoning_effort"] = "none"
        elif control.budget_tokens and control.budget_tokens < MIN_THINKING_BUDGET:
            body["reasoning_effort"] = control.budget_tokens  # the integer effort: a budget below thinking's
        elif control.budget_tokens:
            body["thinking"] = {"type": "enabled", "budget_tokens": control.budget_tokens}
        elif control.effort:
            body["reasoning_effort"] = self.effort(control.effort)
        elif control.enabled:
            body["thinking"] = {"type": "enabled"}

    def handle_chunk_extras(self, chunk: Json, state: StreamState) -> None:
        if isinstance(perf_metrics := chunk.get("perf_metrics"), dict):
            state.provider_metadata["perf_metrics"] = perf_metrics
