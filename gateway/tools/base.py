"""What a server tool is: a function the gateway offers the model, runs itself when the model calls it, and
bills per call (issue 15; the loop that runs them is gateway/tools/loop.py, to come).

A tool declares its name (the spec's plugin id), what the model reads of it (description and JSON Schema
parameters), and runs on the model's arguments, returning a ToolOutcome: text for the model, citations for
the client, and the billable units it used (calls, results, images) that providers.yaml prices. A failure is
an outcome too (`error`): the model reads it as the tool's result, and a failed call costs nothing.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

from gateway.canonical import Citation

__all__ = ["Citation", "ServerTool", "ToolContext", "ToolOutcome"]


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    text: str  # what the model reads as the tool's result
    citations: tuple[Citation, ...] = ()
    units: dict[str, int] = field(default_factory=dict)  # billable units used, e.g. {"call": 1, "result": 5}
    images: tuple[str, ...] = ()  # generated images, as data: URLs (the image tool)
    error: str = ""  # set when the call failed: `text` then says why, and nothing is billed

    @classmethod
    def failed(cls, reason: str) -> "ToolOutcome":
        return cls(text=f"Error: {reason}", error=reason)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a running tool may use: the pooled HTTP session (search APIs), the guarded one (web_fetch)."""

    session: aiohttp.ClientSession
    fetch_session: aiohttp.ClientSession | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the client's plugin options (e.g. max_results)


class ServerTool(ABC):
    name: ClassVar[str]  # the spec's id: web_search, web_fetch, pdf, datetime, image
    description: ClassVar[str]
    parameters: ClassVar[dict[str, Any]]  # JSON Schema of the arguments the model sends
    # The most of each billable unit one call can use: what the reservation holds for a call.
    max_units: ClassVar[dict[str, int]] = {"call": 1}

    @abstractmethod
    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        """Do what the model asked; never raise for the model's mistakes (a ToolOutcome.failed instead)."""
