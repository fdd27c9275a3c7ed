"""The `web_search` and `web_fetch` server tools, over gateway/tools/search.py and gateway/tools/fetch.py.

web_search bills one call and each result it returned; its results are the client's citations. web_fetch
bills one call per page read; the page is the citation. What the model reads is bounded (`MAX_TOOL_TEXT`),
so one tool result cannot fill a context.
"""

from typing import Any, ClassVar

from gateway.tools.base import Citation, ServerTool, ToolContext, ToolOutcome
from gateway.tools.fetch import FetchRefused, fetch_page
from gateway.tools.search import SearchBackend, SearchFailed

MAX_TOOL_TEXT = 20_000  # characters of one result the model reads
DEFAULT_RESULTS, MAX_RESULTS = 5, 10


class WebSearch(ServerTool):
    name: ClassVar[str] = "web_search"
    description: ClassVar[str] = (
        "Search the web. Returns numbered results (title, URL, snippet); cite them by number as [1], [2]."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to search for."}},
        "required": ["query"],
        "additionalProperties": False,
    }
    max_units: ClassVar[dict[str, int]] = {"call": 1, "result": MAX_RESULTS}

    def __init__(self, backend: SearchBackend) -> None:
        self.backend = backend

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return ToolOutcome.failed("query must be a non-empty string")
        wanted = context.options.get("max_results", DEFAULT_RESULTS)
        limit = wanted if isinstance(wanted, int) and 1 <= wanted <= MAX_RESULTS else DEFAULT_RESULTS
        try:
            results = await self.backend.search(query.strip(), limit, context.session)
        except SearchFailed as exc:
            return ToolOutcome.failed(str(exc))
        if not results:
            return ToolOutcome(text=f"No results for {query!r}.", units={"call": 1})
        lines = [f"Results for {query!r} (from {self.backend.name}):"]
        for number, result in enumerate(results, start=1):
            dated = f" ({result.published})" if result.published else ""
            lines.append(f"[{number}] {result.title}{dated}\n{result.url}\n{result.snippet}")
        citations = tuple(Citation(r.url, r.title, r.snippet) for r in results)
        text = "\n\n".join(lines)[:MAX_TOOL_TEXT]
        return ToolOutcome(text=text, citations=citations, units={"call": 1, "result": len(results)})


class WebFetch(ServerTool):
    name: ClassVar[str] = "web_fetch"
    description: ClassVar[str] = "Read a web page or PDF at an http(s) URL and return its main text."
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"url": {"type": "string", "description": "The http or https URL to read."}},
        "required": ["url"],
        "additionalProperties": False,
    }

    async def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        url = arguments.get("url")
        if not isinstance(url, str) or not url.strip():
            return ToolOutcome.failed("url must be an http or https URL")
        if context.fetch_session is None:
            return ToolOutcome.failed("web_fetch is not available on this deployment")
        try:
            page = await fetch_page(url.strip(), context.fetch_session)
        except FetchRefused as exc:
            return ToolOutcome.failed(str(exc))
        text = page.text[:MAX_TOOL_TEXT]
        cut = page.truncated or len(page.text) > MAX_TOOL_TEXT
        header = f"{page.title}\n{page.url}\n\n" if page.title else f"{page.url}\n\n"
        body = header + (text or "(the page has no readable text)") + ("\n[…cut]" if cut else "")
        return ToolOutcome(
            text=body, citations=(Citation(page.url, page.title or page.url),), units={"call": 1}
        )
