"""web_search's backends: one interface, chosen by settings (WEB_SEARCH_BACKEND).

- `searxng`: a SearXNG instance's JSON API (`GET {WEB_SEARCH_URL}/search?q=…&format=json`), self-hosted or
  not, no key;
- `brave`: the Brave Search API (`GET {WEB_SEARCH_URL}/res/v1/web/search`, `X-Subscription-Token`);
- `sandbox`: a small corpus bundled with the product (`sandbox_corpus.json`), ranked by the words a query
  shares with each document. It needs no network, so `make run` and the tests can show the tool offline;
  every one of its results says it comes from the sandbox.
A backend answers `SearchResult`s, which the tool turns into the model's context and the client's citations.
Failures raise SearchFailed, whose message the model reads as the tool's error.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import aiohttp

SANDBOX_CORPUS = Path(__file__).with_name("sandbox_corpus.json")
_WORD = re.compile(r"[a-z0-9]+")


class SearchFailed(Exception):
    """The search could not be done; the message is for the model (no key, no URL, no upstream body)."""


@dataclass(frozen=True, slots=True)
class SearchResult:
    url: str
    title: str
    snippet: str
    published: str = ""  # as the backend gives it, when it does


class SearchBackend(Protocol):
    name: ClassVar[str]

    async def search(self, query: str, limit: int, session: aiohttp.ClientSession) -> list[SearchResult]: ...


async def _get_json(session: aiohttp.ClientSession, url: str, timeout_seconds: float, **kwargs: Any) -> Any:
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        async with session.get(url, timeout=timeout, **kwargs) as response:
            if response.status != 200:
                raise SearchFailed(f"the search service answered HTTP {response.status}")
            return await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise SearchFailed(f"the search service failed ({type(exc).__name__})") from exc


@dataclass(frozen=True)
class SearxngBackend:
    base_url: str
    timeout_seconds: float = 10.0
    name: ClassVar[str] = "searxng"

    async def search(self, query: str, limit: int, session: aiohttp.ClientSession) -> list[SearchResult]:
        params = {"q": query, "format": "json"}
        url = f"{self.base_url.rstrip('/')}/search"
        data = await _get_json(session, url, self.timeout_seconds, params=params)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise SearchFailed("the search service answered without results")
        return [
            SearchResult(
                url=str(item["url"]),
                title=str(item.get("title") or ""),
                snippet=str(item.get("content") or ""),
                published=str(item.get("publishedDate") or ""),
            )
            for item in results
            if isinstance(item, dict) and item.get("url")
        ][:limit]


@dataclass(frozen=True)
class BraveBackend:
    api_key: str
    base_url: str = "https://api.search.brave.com"
    timeout_seconds: float = 10.0
    name: ClassVar[str] = "brave"

    async def search(self, query: str, limit: int, session: aiohttp.ClientSession) -> list[SearchResult]:
        if not self.api_key:
            raise SearchFailed("web search is not configured on this deployment")
        url = f"{self.base_url.rstrip('/')}/res/v1/web/search"
        headers = {"X-Subscription-Token": self.api_key, "Accept": "application/json"}
        params = {"q": query, "count": str(min(limit, 20))}
        data = await _get_json(session, url, self.timeout_seconds, params=params, headers=headers)
        web = data.get("web") if isinstance(data, dict) else None
        results = web.get("results") if isinstance(web, dict) else []
        return [
            SearchResult(
                url=str(item["url"]),
                title=str(item.get("title") or ""),
                snippet=str(item.get("description") or ""),
                published=str(item.get("page_age") or item.get("age") or ""),
            )
            for item in results or []
            if isinstance(item, dict) and item.get("url")
        ][:limit]


# Words that say how to search, not what for: matching them would rank any document.
_ASKING = """a an and are as at be by can do does for from how i in is it me of on or please search tell
the this to up web what when where which who why with you find look about latest news"""
_STOPWORDS = frozenset(_ASKING.split())


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower())) - _STOPWORDS


@dataclass(frozen=True)
class SandboxBackend:
    """The bundled corpus: offline, deterministic, and labelled as the sandbox in every result."""

    corpus_path: Path = SANDBOX_CORPUS
    name: ClassVar[str] = "sandbox"

    async def search(self, query: str, limit: int, session: aiohttp.ClientSession) -> list[SearchResult]:
        documents = json.loads(self.corpus_path.read_text())
        asked = _words(query)
        scored = []
        for position, doc in enumerate(documents):
            shared = len(asked & _words(f"{doc['title']} {doc['text']}"))
            if shared:
                scored.append((-shared, position, doc))
        scored.sort(key=lambda entry: entry[:2])
        return [
            SearchResult(doc["url"], f"[sandbox] {doc['title']}", doc["text"], doc.get("published", ""))
            for _, _, doc in scored[:limit]
        ]


def search_backend(kind: str, *, url: str = "", api_key: str = "") -> SearchBackend:
    """The backend the settings name; ValueError for an unknown one or one without what it needs."""
    if kind == "sandbox":
        return SandboxBackend()
    if kind == "searxng":
        if not url:
            raise ValueError("WEB_SEARCH_URL must point at the SearXNG instance")
        return SearxngBackend(url)
    if kind == "brave":
        if not api_key:
            raise ValueError("WEB_SEARCH_API_KEY must hold the Brave Search API key")
        return BraveBackend(api_key, url or BraveBackend.base_url)
    raise ValueError(f"WEB_SEARCH_BACKEND must be sandbox, searxng or brave, not {kind!r}")
