"""What each OpenAI-style dialect's spec document fixes for its fake (tests/fakes/openai_dialects.py): the
path prefix, the field reasoning rides in, the error `type` of a status, the HTTP status of each failure mode,
and the request fields of the dialects whose schemas are closed (chat) or that have a text completions
endpoint; the fake refuses any other field, as a strict server would."""

PATH_PREFIX = {"cerebras": "/v1", "fireworks": "/inference/v1", "baseten": "/v1", "llamacpp": "/v1"}
# Baseten's and Jan's schemas name no reasoning field; their reasoning servers (vLLM, llama.cpp) use this one.
REASONING_FIELD = {
    "cerebras": "reasoning",
    "fireworks": "reasoning_content",
    "baseten": "reasoning_content",
    "llamacpp": "reasoning_content",
}
# The error `type` a status comes with (Cerebras' in-stream ErrorChunkContent, OpenAI's classes).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "invalid_request_error",
    404: "not_found_error",
    429: "too_many_requests_error",
}
FAILURE_STATUS = {
    "server_error": 500,
    "rate_limited": 429,
    "unauthorized": 401,
    "overloaded": 529,
    "context_length": 400,
}
# Top-level request fields of the dialects whose schemas are closed (additionalProperties: false).
_CEREBRAS_FIELDS = """
    model stream messages frequency_penalty logit_bias logprobs top_logprobs max_tokens max_completion_tokens
    min_tokens min_completion_tokens n presence_penalty reasoning_effort disable_reasoning clear_thinking
    reasoning_format response_format seed service_tier stop stream_options temperature top_p tools tool_choice
    parallel_tool_calls user prediction prompt_cache_key
"""
_FIREWORKS_FIELDS = """
    context_length_exceeded_behavior echo echo_last frequency_penalty function_call functions ignore_eos
    logit_bias logprobs max_completion_tokens max_tokens messages metadata min_p mirostat_lr mirostat_target
    model n parallel_tool_calls perf_metrics_in_response prediction presence_penalty
    prompt_cache_isolation_key prompt_truncate_len raw_output reasoning_effort reasoning_history
    repetition_penalty response_format
    return_token_ids seed speculation stop stream temperature thinking tool_choice tools top_k top_logprobs
    top_p typical_p user
"""
_BASETEN_FIELDS = """
    add_generation_prompt add_special_tokens bad bad_token_ids best_of chat_template chat_template_args
    disaggregated_params documents early_stopping echo frequency_penalty ignore_eos include_stop_str_in_output
    length_penalty logit_bias logprobs max_tokens messages min_p min_tokens model n parallel_tool_calls
    presence_penalty repetition_penalty response_format seed skip_special_tokens spaces_between_special_tokens
    stop stop_token_ids stream stream_options temperature tool_choice tools top_k top_logprobs top_p top_p_min
    truncate_prompt_tokens user
"""
# The text completions request fields of the dialects whose spec has that endpoint (Cerebras'
# CompletionRequest, Jan's CreateCompletionRequest): the fake refuses any other, as a strict server would.
_CEREBRAS_COMPLETION_FIELDS = """
    model stream prompt best_of return_raw_tokens echo frequency_penalty logit_bias logprobs max_tokens
    min_tokens grammar_root n presence_penalty seed stop stream_options suffix temperature top_p user
    prompt_cache_key reasoning_format
"""
_JAN_COMPLETION_FIELDS = """
    prompt suffix max_tokens min_tokens temperature top_p min_p echo stop stream logprobs presence_penalty
    frequency_penalty logit_bias seed model n best_of user top_k repeat_penalty logit_bias_type
    mirostat_mode mirostat_tau mirostat_eta grammar
"""
COMPLETION_FIELDS = {
    "cerebras": frozenset(_CEREBRAS_COMPLETION_FIELDS.split()),
    "llamacpp": frozenset(_JAN_COMPLETION_FIELDS.split()),
}
CLOSED_FIELDS = {
    "cerebras": frozenset(_CEREBRAS_FIELDS.split()),
    "fireworks": frozenset(_FIREWORKS_FIELDS.split()),
    "baseten": frozenset(_BASETEN_FIELDS.split()),
}
