"""Baseten Model APIs (spec 001): OpenAI chat authenticated with `Authorization: Api-Key <key>`.

Only `n` = 1 is supported. The token limit is `max_tokens`. `stream_options.continuous_usage_stats`
defaults to true, so usage may ride on every chunk: the last one seen is the total. The spec has no
reasoning controls or fields; reasoning models there stream `reasoning_content` (vLLM style), which the
base understands, and template switches go through `extra` (`chat_template_args`).
"""

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest
from gateway.upstreams.base import RouteInfo, UpstreamError
from gateway.upstreams.openai_compatible import Json, OpenAICompatibleAdapter
from gateway.upstreams.registry import register


@register
class BasetenAdapter(OpenAICompatibleAdapter):
    kind = "baseten"
    label = "Baseten"
    max_tokens_field = "max_tokens"
    completes_text = False  # its spec has chat completions only

    def auth_headers(self, route: RouteInfo) -> dict[str, str]:
        key = route.provider.api_key
        return {"Authorization": f"Api-Key {key}"} if key else {}

    def map_reasoning(self, request: CanonicalRequest, body: Json) -> None:
        """No reasoning controls in Baseten's schema (which is closed): nothing to send."""

    def build_body(self, request: CanonicalRequest, route: RouteInfo) -> Json:
        body = super().build_body(request, route)
        if body.get("n", 1) != 1:
            raise UpstreamError(ErrorCode.INVALID_REQUEST, "Baseten supports only n = 1")
        return body
