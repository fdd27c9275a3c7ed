"""Baseten Model APIs (spec 001): OpenAI chat authenticated with `Authorization: Api-Key <key>`.

Only `n` = 1 is supported. The token limit is `max_tokens`. `stream_options.continuous_usage_stats`
defaults to true, so usage may ride on every chunk: the last one seen is the total. The spec has no
reasoning controls or fields; reasoning models there stream `reasoning_content` (vLLM style), which the
base understands, and template switches go through `extra` (`chat_template_args`). The request schema is
closed: the fields below are its own.
"""

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest
from gateway.upstreams.base import RouteInfo, UpstreamError
from gateway.upstreams.extras import field_set
from gateway.upstreams.openai_compatible import Json, OpenAICompatibleAdapter
from gateway.upstreams.registry import register

# ChatCompletionRequest (spec 001), additionalProperties: false.
CHAT_FIELDS = field_set(
    """
    add_generation_prompt add_special_tokens bad bad_token_ids best_of chat_template chat_template_args
    disaggregated_params documents early_stopping echo frequency_penalty ignore_eos include_stop_str_in_output
    length_penalty logit_bias logprobs max_tokens messages min_p min_tokens model n parallel_tool_calls
    presence_penalty repetition_penalty response_format seed skip_special_tokens spaces_between_special_tokens
    stop stop_token_ids stream stream_options temperature tool_choice tools top_k top_logprobs top_p top_p_min
    truncate_prompt_tokens user
    """
)


@register
class BasetenAdapter(OpenAICompatibleAdapter):
    kind = "baseten"
    label = "Baseten"
    max_tokens_field = "max_tokens"
    completes_text = serves_embeddings = False  # its spec has chat completions only
    chat_fields = CHAT_FIELDS

    def auth_headers(self, route: RouteInfo) -> dict[str, str]:
        key = route.provider.api_key
        return {"Authorization": f"Api-Key {key}"} if key else {}

    def map_reasoning(self, request: CanonicalRequest, body: Json) -> None:
        """No reasoning controls in Baseten's schema (which is closed): nothing to send."""

    def build_body(self, request: CanonicalRequest, route: RouteInfo) -> Json:
        body = super().build_body(request, route)
        if body.get("n", 1) != 1:
            raise UpstreamError(ErrorCode.INVALID_REQUEST, "n: Baseten supports only n = 1", param="n")
        return body
