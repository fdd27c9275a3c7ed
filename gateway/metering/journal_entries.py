"""The settlement journal's entries and their lines (the formats gateway/metering/journal.py lists): an
entry as the journal holds it in memory, the JSON line of each fact, and a segment's lines read back."""

import json
import logging
from dataclasses import dataclass
from typing import Any

from core.encoding import compact_json
from core.errors import ErrorCode
from gateway.canonical import Usage
from gateway.metering.base import Outcome, Settlement, header_pieces
from gateway.models import GenerationStatus

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Entry:
    """One admitted request as the journal knows it."""

    request_id: str
    # The settlement's header, JSON, in the pieces metering.base.settlement_header made: the caller's and the
    # model's are shared with every entry of that key and model.
    header_pieces: tuple[bytes, ...]
    prompt_estimate: int
    opened_at: float
    provider: str = ""
    upstream_model_id: str = ""
    delivered: int = 0
    # A request with server tools, at its last finished step: the steps' usage as counted, the cost of the
    # calls run, and the deltas delivered by then (ADR 0013). A cut-off bills these plus what came after.
    stepped: dict[str, Any] | None = None
    outcome: bytes | None = None  # JSON, once the request is over
    taken_at: float | None = None  # when a meter accepted the settlement
    next_try: float = 0.0  # when the keeper may settle it (again)
    attempts: int = 0  # settlements refused so far
    resettles: int = 0  # settlements taken by a meter that lost them (or was slow)
    route_unwritten: bool = False  # the route is known, its line not written yet (Journal.routed)

    @property
    def header(self) -> bytes:
        return b"".join(self.header_pieces)

    def settlement(self) -> Settlement:
        if self.outcome is None:
            raise ValueError(f"{self.request_id} has no outcome yet")
        return Settlement.from_json({**json.loads(self.header), "outcome": json.loads(self.outcome)})

    def workspace_id(self) -> str:
        return str(json.loads(self.header)["caller"]["workspace_id"])

    def cut_off(self, ended_at: float) -> bytes:
        """The outcome of a request whose process never finished it: billed for the deltas delivered to the
        client (with the prompt estimate), or, with nothing delivered, a failure that costs nothing."""
        latency_ms = int(max(0.0, ended_at - self.opened_at) * 1000)
        tool_costs: dict[str, int] = {}
        if self.stepped is not None:  # the finished steps and calls, then the step under way as estimated
            counted, tool_costs = Usage(**self.stepped["u"]), self.stepped["tc"]
            after = self.delivered - self.stepped["n"]
            under_way = Usage(self.prompt_estimate, after) if after > 0 else Usage(0, 0)
            usage = Usage(
                prompt_tokens=counted.prompt_tokens + under_way.prompt_tokens,
                completion_tokens=counted.completion_tokens + under_way.completion_tokens,
                cached_prompt_tokens=counted.cached_prompt_tokens,
                reasoning_tokens=counted.reasoning_tokens,
                cache_write_prompt_tokens=counted.cache_write_prompt_tokens,
            )
            status, error = GenerationStatus.CANCELLED, ""
        elif self.delivered:
            usage = Usage(prompt_tokens=self.prompt_estimate, completion_tokens=self.delivered)
            status, error = GenerationStatus.CANCELLED, ""
        else:
            usage = Usage(prompt_tokens=0, completion_tokens=0)
            status, error = GenerationStatus.FAILED, ErrorCode.INTERNAL_ERROR.value
        outcome = Outcome(
            status=status,
            usage=usage,
            provider=self.provider,
            upstream_model_id=self.upstream_model_id,
            error_code=error,
            latency_ms=latency_ms,
            tool_costs=tool_costs,
        )
        return compact_json(outcome)

    def lines(self) -> bytes:
        """The lines that bring this entry back in another segment."""
        lines = [opened_line(self.request_id, self.header_pieces, self.prompt_estimate, self.opened_at)]
        if self.provider:
            lines.append(routed_line(self.request_id, self.provider, self.upstream_model_id))
        if self.stepped is not None:
            lines.append(stepped_line(self.request_id, self.stepped))
        if self.delivered:
            lines.append(delivered_line(self.request_id, self.delivered))
        if self.outcome is not None:
            lines.append(settling_line(self.request_id, self.outcome))
        if self.taken_at is not None:
            lines.append(taken_line(self.request_id, self.taken_at))
        return b"".join(lines)


def opened_line(request_id: str, header: tuple[bytes, ...], prompt_estimate: int, at: float) -> bytes:
    head = b'{"t":"o","id":"%s","at":%.3f,"pe":%d,"h":' % (request_id.encode(), at, prompt_estimate)
    return b"".join((head, *header, b"}\n"))


def routed_line(request_id: str, provider: str, upstream_model_id: str) -> bytes:
    return b'{"t":"r","id":"%s","p":%s,"u":%s}\n' % (
        request_id.encode(),
        compact_json(provider),
        compact_json(upstream_model_id),
    )


def delivered_line(request_id: str, count: int) -> bytes:
    return b'{"t":"n","id":"%s","n":%d}\n' % (request_id.encode(), count)


def stepped_line(request_id: str, stepped: dict[str, Any]) -> bytes:
    return b'{"t":"k","id":"%s","k":%s}\n' % (request_id.encode(), compact_json(stepped))


def settling_line(request_id: str, outcome: bytes) -> bytes:
    return b'{"t":"s","id":"%s","o":%s}\n' % (request_id.encode(), outcome)


def taken_line(request_id: str, at: float) -> bytes:
    return b'{"t":"m","id":"%s","at":%.3f}\n' % (request_id.encode(), at)


_HEADER_FIELDS = ["request_id", "caller", "model", "ingress_format", "streamed", "end_user"]


def _read_header(header: dict[str, Any], shared: dict[bytes, bytes]) -> tuple[bytes, ...]:
    """A header read back in `settlement_header`'s pieces, its caller's and model's JSON one object for every
    entry read with it that has the same (an entry read back held its header whole: ~2x the memory of one
    made live, for up to GATEWAY_JOURNAL_MAX_IN_MEMORY entries unspilled after an outage)."""
    if list(header) != _HEADER_FIELDS:  # another release's header: kept whole
        return (compact_json(header),)
    caller, model = compact_json(header["caller"]), compact_json(header["model"])
    return header_pieces(
        header["request_id"],
        shared.setdefault(caller, caller),
        shared.setdefault(model, model),
        header["ingress_format"],
        header["streamed"],
        header["end_user"],
    )


def read_entries(data: bytes) -> dict[str, Entry]:
    """A segment's entries, in order. A torn last line (a machine crash mid-write) is skipped."""
    entries: dict[str, Entry] = {}
    shared: dict[bytes, bytes] = {}
    for raw in data.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            logger.warning("journal: skipping a torn line %r", raw[:80])
            continue
        kind, request_id = line["t"], line["id"]
        if kind == "o":
            entries[request_id] = Entry(request_id, _read_header(line["h"], shared), line["pe"], line["at"])
            continue
        entry = entries.get(request_id)
        if entry is None:
            continue
        if kind == "r":
            entry.provider, entry.upstream_model_id = line["p"], line["u"]
        elif kind == "n":
            entry.delivered = line["n"]
        elif kind == "k":
            entry.stepped = line["k"]
        elif kind == "s":
            entry.outcome = compact_json(line["o"])
        elif kind == "m":
            entry.taken_at = line["at"]
    return entries
