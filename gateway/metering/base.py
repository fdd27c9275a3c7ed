"""What both meters share: the outcome of a request, the settlement that bills it, its cost, and the
generation record it leaves."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.utils import timezone

from billing.key_spend import limit_period_key
from catalog.pricing import generation_cost_micro_usd, worst_case_cost_micro_usd
from core.encoding import compact_json, read_json
from core.errors import ApiError, ErrorCode
from gateway.auth import Caller
from gateway.canonical import Usage
from gateway.catalog_cache import ModelInfo
from gateway.models import Generation, GenerationStatus

# The request's `user` is free text; the record keeps what fits its column (a longer one must not fail it).
END_USER_MAX_LENGTH = Generation._meta.get_field("end_user").max_length
ERROR_DETAIL_MAX_LENGTH = 4000


# No __slots__ here nor in `Usage`: orjson writes a dataclass from its __dict__ (the journal writes every
# request's outcome); a slotted one it first asks for a __dict__, an AttributeError made and dropped each.
@dataclass
class Outcome:
    """What happened upstream, as the generation record and the bill need it."""

    status: str
    usage: Usage
    provider: str = ""
    upstream_model_id: str = ""
    finish_reason: str = ""
    error_code: str = ""
    error_detail: str = ""  # operators' words (UpstreamError.detail); the client saw only the message
    latency_ms: int = 0
    ttft_ms: int | None = None
    # Time spent waiting on upstreams (first request sent -> last byte read), for the gateway-overhead metric.
    upstream_ms: int | None = None
    tool_costs: dict[str, int] = field(default_factory=dict)  # micro-USD by server tool (ADR 0013)


@dataclass(frozen=True, slots=True)
class Settlement:
    """One finished request as the meters bill and record it: who called, which model, in what format,
    and what happened. The same value settles in the gateway, and, serialised, in a Celery retry."""

    request_id: str
    caller: Caller
    model: ModelInfo
    ingress_format: str
    streamed: bool
    end_user: str | None
    outcome: Outcome

    def to_json(self) -> dict[str, Any]:
        """The journal's JSON of the settlement, as a dict; `from_json` reads it back. The model goes with the
        prices the request was admitted with: a later settlement bills what the client was shown, whatever the
        catalog says."""
        return {**read_json(self.header()), "outcome": self.outcome_json(self.outcome)}

    def header(self) -> bytes:
        return b"".join(
            settlement_header(
                request_id=self.request_id,
                caller=self.caller,
                model=self.model,
                ingress_format=self.ingress_format,
                streamed=self.streamed,
                end_user=self.end_user,
            )
        )

    @staticmethod
    def outcome_json(outcome: Outcome) -> dict[str, Any]:
        """The outcome as a dict. The journal writes `compact_json(outcome)`: orjson writes a dataclass's
        fields itself, in C, where a dict of them was made in Python for every request."""
        return read_json(compact_json(outcome))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Settlement":
        outcome = Outcome(**{**data["outcome"], "usage": Usage(**data["outcome"]["usage"])})
        return cls(
            request_id=data["request_id"],
            caller=Caller.from_settlement(data["caller"]),
            model=ModelInfo.from_settlement(data["model"]),
            ingress_format=data["ingress_format"],
            streamed=data["streamed"],
            end_user=data["end_user"],
            outcome=outcome,
        )


def settlement_header(
    *,
    request_id: str,
    caller: Caller,
    model: ModelInfo,
    ingress_format: str,
    streamed: bool,
    end_user: str | None,
) -> tuple[bytes, ...]:
    """A settlement's JSON but its outcome: what is known once the request is admitted, as the journal keeps
    it, in pieces to be joined. The caller's and the model's pieces are the bytes made once, with them
    (`Caller`, `ModelInfo`), so the journal's entries of a key and a model share one copy of each: a busy
    process holds a few thousand entries until PostgreSQL has their bills (ADR 0010)."""
    return header_pieces(
        request_id, caller.settlement_json, model.settlement_json, ingress_format, streamed, end_user
    )


def header_pieces(
    request_id: str,
    caller_json: bytes,
    model_json: bytes,
    ingress_format: str,
    streamed: bool,
    end_user: str | None,
) -> tuple[bytes, ...]:
    """`settlement_header`'s pieces around the caller's and the model's JSON, given as the bytes to share."""
    return (
        b'{"request_id":%s,"caller":' % compact_json(request_id),
        caller_json,
        b',"model":',
        model_json,
        b',"ingress_format":%s,"streamed":%s,"end_user":%s}'
        % (compact_json(ingress_format), b"true" if streamed else b"false", compact_json(end_user)),
    )


class Meter(Protocol):
    """Reserve before the upstream call; settle and record after it (design §4). Both methods are async."""

    # Whether a settlement this meter accepted is in PostgreSQL already (the journal forgets it at once).
    durable: bool

    async def reserve(
        self,
        *,
        caller: Caller,
        model: ModelInfo,
        request_id: str,
        prompt_tokens: int,
        max_tokens: int | None,
        extra_micro_usd: int = 0,
    ) -> int:
        """Admit the request (rate limit, credits, key limit) and hold its worst case: one answer of
        `prompt_tokens` and `max_tokens`, plus `extra_micro_usd` (what server tools may add). Raises
        ApiError."""

    async def settle(self, settlement: Settlement) -> int:
        """Charge what was generated (nothing for a failure), exactly once, and keep the generation record."""

    async def count_free_request(self, *, caller: Caller) -> None:
        """A free request (token counting, the tokenizer) against the key's requests-per-minute limit, in the
        same window as the billed ones: free does not mean unlimited. Raises ApiError."""

    async def generation(self, *, workspace_id: uuid.UUID, request_id: str) -> dict[str, Any] | None:
        """The generation record's fields, waiting briefly for a request that is still finishing."""

    async def still_held(self, settlements: list[tuple[str, str]]) -> set[str]:
        """Of these (workspace id, request id) settlements, those the meter took and still holds on their way
        to PostgreSQL (a durable meter holds none: what it took is there)."""

    async def renew(self, holds: list[tuple[str, str]]) -> int:
        """These (workspace id, request id) requests are still under way: their holds expire
        RESERVATION_TTL_SECONDS from now, not when they were made (ADR 0028). Returns how many moved."""


def worst_case(model: ModelInfo, prompt_tokens: int, max_tokens: int | None, extra_micro_usd: int = 0) -> int:
    return (
        worst_case_cost_micro_usd(model=model, prompt_tokens=prompt_tokens, max_tokens=max_tokens)
        + extra_micro_usd
    )


def cost_of(model: ModelInfo, usage: Usage) -> int:
    """What the tokens cost (server tools' costs are the outcome's: `total_cost`)."""
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    return generation_cost_micro_usd(
        model=model,
        prompt_tokens=usage.prompt_tokens - cached,
        cached_prompt_tokens=cached,
        completion_tokens=usage.completion_tokens,
    )


def total_cost(model: ModelInfo, outcome: Outcome) -> int:
    """The tokens and the server tool calls that succeeded: what the client is shown and charged."""
    return cost_of(model, outcome.usage) + sum(outcome.tool_costs.values())


def charge_for(settlement: Settlement) -> int:
    """Failed requests cost nothing; completed and cancelled ones pay for the tokens produced and the
    server tool calls run."""
    outcome = settlement.outcome
    return 0 if outcome.status == GenerationStatus.FAILED else total_cost(settlement.model, outcome)


def generation_record(
    settlement: Settlement, *, cost: int, finished_at: datetime | None = None
) -> dict[str, Any]:
    """The generation record as JSON holds it, the same for both meters: the Redis meter queues it for the
    writer and keeps it for the API; `records.fields_from_json` makes it a Generation row's fields. The
    workspace id and the times are text (made once here, not a dict of objects copied into text)."""
    finished = finished_at or timezone.now()
    caller, outcome = settlement.caller, settlement.outcome
    usage = outcome.usage
    return {
        "request_id": settlement.request_id,
        "workspace_id": caller.workspace_text,
        "api_key_id": caller.api_key_id,
        "source": caller.source,
        "ingress_format": settlement.ingress_format,
        "model": settlement.model.slug,
        "provider": outcome.provider,
        "upstream_model_id": outcome.upstream_model_id,
        "streamed": settlement.streamed,
        "tokens_prompt": usage.prompt_tokens,
        "tokens_completion": usage.completion_tokens,
        "tokens_reasoning": usage.reasoning_tokens,
        "tokens_cached_prompt": usage.cached_prompt_tokens,
        "cost_micro_usd": cost,
        # As billed: a failed request is charged nothing, its tools included (charge_for).
        "tool_costs_micro_usd": {} if outcome.status == GenerationStatus.FAILED else dict(outcome.tool_costs),
        "provider_metadata": usage.provider_metadata or {},
        "latency_ms": outcome.latency_ms,
        "ttft_ms": outcome.ttft_ms,
        "status": outcome.status,
        "finish_reason": outcome.finish_reason,
        "error_code": outcome.error_code,
        "error_detail": outcome.error_detail[:ERROR_DETAIL_MAX_LENGTH],
        "end_user": (settlement.end_user or "")[:END_USER_MAX_LENGTH],
        "created_at": (finished - timedelta(milliseconds=outcome.latency_ms)).isoformat(),
        "finished_at": finished.isoformat(),
    }


def limit_period(caller: Caller, now: datetime) -> str:
    """The key-limit period a charge falls in (billing.key_spend.limit_period_key)."""
    return limit_period_key(caller.limit_reset, now)


def refused(exc: Exception) -> ApiError:
    """The billing refusals as the gateway's taxonomy errors."""
    from billing.errors import InsufficientCredits, KeyLimitExceeded

    if isinstance(exc, KeyLimitExceeded):
        return ApiError(ErrorCode.KEY_LIMIT_EXCEEDED, "This key's credit limit is reached.")
    if isinstance(exc, InsufficientCredits):
        return ApiError(
            ErrorCode.INSUFFICIENT_CREDITS,
            "Insufficient credits for this request's worst case; top up, or lower max_tokens.",
        )
    raise TypeError(exc)
