"""What the OpenAI-style dialects' fakes send back when they answer, per dialect: a whole `chat.completion`,
the chunks of a stream, usage where and how each dialect reports it (with Cerebras' time_info and Fireworks'
perf_metrics), and the error object a 200 or a stream may carry. A mixin of `DialectFake`
(tests/fakes/openai_dialects.py), which serves these bodies and records the requests."""

import json
from typing import Any

from tests.fakes.openai_dialect_specs import ERROR_TYPES, REASONING_FIELD
from tests.fakes.openai_scenario import CEREBRAS_TIME_INFO, Dialect, Scenario, fireworks_perf_metrics, pieces


class DialectAnswers:
    dialect: Dialect

    def _answer(self, s: Scenario, body: dict) -> dict:
        """A `chat.completion`: the message the stream's deltas add up to, usage as the dialect reports it."""
        message: dict[str, Any] = {"role": "assistant", "content": (s.text + s.text_after_tool_calls) or None}
        if s.reasoning:
            message[REASONING_FIELD[self.dialect]] = s.reasoning
        if s.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in s.tool_calls
            ]
        finish = (
            None
            if s.failure == "unfinished"
            else s.finish_reason or ("tool_calls" if s.tool_calls else "stop")
        )
        answer = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1721088719}
        answer |= {"model": body.get("model", ""), "system_fingerprint": "fp_fake"}
        answer["choices"] = [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]
        return answer | self._whole_usage(s, body)

    def _whole_usage(self, s: Scenario, body: dict) -> dict:
        """What a whole answer reports beside its choices: usage (every dialect, llama.cpp too), Cerebras'
        time_info, Fireworks' perf_metrics when asked for."""
        extras: dict[str, Any] = {"usage": self._usage(s)}
        if self.dialect == "cerebras":
            extras["time_info"] = dict(CEREBRAS_TIME_INFO)
        elif self.dialect == "fireworks" and body.get("perf_metrics_in_response"):
            extras["perf_metrics"] = fireworks_perf_metrics(s)
        return extras

    def _error_object(self, s: Scenario) -> dict:
        kind = ERROR_TYPES.get(s.stream_error_status, "server_error")
        error = {"message": s.stream_error_message, "type": kind, "code": None}
        if self.dialect == "cerebras":
            return {"status_code": s.stream_error_status, "error": error}
        return {"error": {**error, "code": s.stream_error_status}}

    # --- What a successful stream looks like, per dialect -----------------------------------------
    def _frames(self, s: Scenario, body: dict) -> list[str]:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1721088719}
        base |= {"model": body.get("model", ""), "system_fingerprint": "fp_fake"}
        deltas: list[dict] = [{"role": "assistant", "content": ""}]
        deltas += [{REASONING_FIELD[self.dialect]: p} for p in pieces(s.reasoning, s.piece)]
        deltas += [{"content": p} for p in pieces(s.text, s.piece)]
        for i, call in enumerate(s.tool_calls):
            head = {
                "index": i,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            deltas.append({"tool_calls": [head]})
            deltas += [
                {"tool_calls": [{"index": i, "function": {"arguments": p}}]}
                for p in pieces(call.arguments, 4)
            ]
        deltas += [{"content": p} for p in pieces(s.text_after_tool_calls, s.piece)]
        chunks = [base | {"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        if s.failure == "unfinished":
            return [json.dumps(chunk) for chunk in chunks]
        finish = s.finish_reason or ("tool_calls" if s.tool_calls else "stop")
        chunks.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        self._add_usage(chunks, s, body, base)
        return [json.dumps(chunk) for chunk in chunks]

    def _usage(self, s: Scenario, completion: int | None = None) -> dict:
        usage = {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens}
        if completion is not None:
            usage["completion_tokens"] = completion
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if self.dialect == "llamacpp":  # Jan's CompletionUsage: the three counts only
            return usage
        usage["prompt_tokens_details"] = {"cached_tokens": s.cached_tokens}
        if self.dialect != "fireworks":  # Fireworks' UsageInfo has no completion details
            usage["completion_tokens_details"] = {"reasoning_tokens": s.reasoning_tokens}
        return usage

    def _add_usage(self, chunks: list[dict], s: Scenario, body: dict, base: dict) -> None:
        if self.dialect == "cerebras":  # usage and time_info ride on the finish chunk
            chunks[-1] |= {"usage": self._usage(s), "time_info": dict(CEREBRAS_TIME_INFO)}
        elif self.dialect == "fireworks":  # always, on the finish chunk
            chunks[-1]["usage"] = self._usage(s)
            if body.get("perf_metrics_in_response"):
                chunks[-1]["perf_metrics"] = fireworks_perf_metrics(s)
        elif self.dialect == "baseten":
            options = body.get("stream_options") or {}
            if options.get("continuous_usage_stats", True):  # the spec's default: running totals each chunk
                for number, chunk in enumerate(chunks[:-1]):
                    chunk["usage"] = self._usage(s, min(number, s.completion_tokens))
                chunks[-1]["usage"] = self._usage(s)
            if options.get("include_usage", True):
                chunks.append(base | {"choices": [], "usage": self._usage(s)})
        # llamacpp: no usage in the stream, whatever was asked
