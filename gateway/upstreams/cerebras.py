"""Cerebras Inference (spec 000): OpenAI chat with its own reasoning fields and errors inside the stream.

Reasoning is asked for as `reasoning_format: parsed`, so it streams in the delta's `reasoning` field rather
than inline in `content`; off is `disable_reasoning`. A client's own `reasoning_format` is taken when the
reasoning still cannot reach `content` (`parsed`, `text_parsed`, `hidden`) and refused by name otherwise.
Errors may arrive mid-stream as an `ErrorChunkResponse` (`{"status_code", "error": {...}}`), which the base
maps by its status and body. Chunks carry `time_info` (queue, prompt, completion and total times): the last
one is the provider metadata of the answer. Both request schemas are closed: the fields below are theirs.
"""

from core.errors import ErrorCode
from gateway.canonical import CanonicalRequest
from gateway.upstreams.base import UpstreamError
from gateway.upstreams.extras import field_set
from gateway.upstreams.openai_compatible import Json, OpenAICompatibleAdapter
from gateway.upstreams.openai_events import StreamState
from gateway.upstreams.openai_request import effort_for_budget
from gateway.upstreams.registry import register

# ChatCompletionRequest and CompletionRequest (spec 000), additionalProperties: false.
CHAT_FIELDS = field_set(
    """
    model stream messages frequency_penalty logit_bias logprobs top_logprobs max_tokens max_completion_tokens
    min_tokens min_completion_tokens n presence_penalty reasoning_effort disable_reasoning clear_thinking
    reasoning_format response_format seed service_tier stop stream_options temperature top_p tools tool_choice
    parallel_tool_calls user prediction prompt_cache_key
    """
)
COMPLETION_FIELDS = field_set(
    """
    model stream prompt best_of return_raw_tokens echo frequency_penalty logit_bias logprobs max_tokens
    min_tokens grammar_root n presence_penalty seed stop stream_options suffix temperature top_p user
    prompt_cache_key reasoning_format
    """
)
# The values that keep reasoning out of `content`: `parsed` and `text_parsed` put it in `reasoning`,
# `hidden` leaves it out. `raw` would mix it into the answer's text, `none` leave that to the model.
PARSEABLE_REASONING_FORMATS = frozenset({"parsed", "text_parsed", "hidden"})


@register
class CerebrasAdapter(OpenAICompatibleAdapter):
    kind = "cerebras"
    label = "Cerebras"
    serves_embeddings = False  # its spec has chat and text completions only
    max_tokens_field = "max_completion_tokens"
    reasoning_fields = ("reasoning",)
    history_reasoning_field = "reasoning"
    chat_fields = CHAT_FIELDS
    completion_fields = COMPLETION_FIELDS
    efforts = ("low", "medium", "high")

    def map_reasoning(self, request: CanonicalRequest, body: Json) -> None:
        body["reasoning_format"] = refuse_unparseable(request.extra.get("reasoning_format", "parsed"))
        control = request.reasoning
        if control is None:
            return
        if control.enabled is False:
            body["disable_reasoning"] = True
        elif control.effort:
            body["reasoning_effort"] = self.effort(control.effort)
        elif control.budget_tokens:  # Cerebras takes no budget: the nearest effort instead
            body["reasoning_effort"] = effort_for_budget(control.budget_tokens)
        elif control.enabled:
            body["disable_reasoning"] = False

    def handle_chunk_extras(self, chunk: Json, state: StreamState) -> None:
        if isinstance(time_info := chunk.get("time_info"), dict):
            state.provider_metadata["time_info"] = time_info


def refuse_unparseable(reasoning_format: object) -> object:
    """A chat request's `reasoning_format`, unless it would put the reasoning inside the answer's text."""
    if isinstance(reasoning_format, str) and reasoning_format in PARSEABLE_REASONING_FORMATS:
        return reasoning_format
    raise UpstreamError(
        ErrorCode.INVALID_REQUEST,
        f"reasoning_format: {reasoning_format!r} would mix the model's reasoning into its answer; use "
        "'parsed' (the default here), 'text_parsed' or 'hidden'",
        param="reasoning_format",
    )
