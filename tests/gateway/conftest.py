"""The gateway served for real: uvicorn on a loopback port, in a thread, against the test database."""

import asyncio
import threading
import time

import pytest
import uvicorn

from gateway.auth import key_cache
from gateway.catalog_cache import catalog_cache
from tests.factories import make_user, make_workspace


class ServerThread:
    """`config.asgi:application` (gateway and Django) on uvicorn; `static` adds the static files, as
    `runserver` serves them, for the browser tests of the whole site; `lifespan="off"` runs it as Daphne's
    `runserver` does, with no lifespan events."""

    def __init__(self, *, static: bool = False, lifespan: str = "on", http: type | str = "auto") -> None:
        """`http`: uvicorn's protocol (production's: core.http_server.HttpToolsProtocol)."""
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        from config.asgi import application

        app = ASGIStaticFilesHandler(application) if static else application
        self.config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan, http=http
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def gateway_url(transactional_db, shipped_catalog, settings):
    settings.EMBEDDED_BEAT = False  # the tests run the reaper themselves
    catalog_cache.invalidate()
    key_cache._entries.clear()
    with ServerThread() as url:
        yield url
    catalog_cache.invalidate()


@pytest.fixture
def funded_key(transactional_db):
    """A workspace with $5 and an API key for it: (workspace, secret)."""
    from console.services.keys import api_key_create

    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=5_000_000)
    issued = api_key_create(workspace=workspace, name="test", created_by=owner)
    return workspace, issued.secret


@pytest.fixture
def sql_meter(settings, monkeypatch):
    """The SQL meter (a balance is final when the response is), the offline search, the fakes' key."""
    settings.GATEWAY_METER = "sql"
    settings.WEB_SEARCH_BACKEND = "sandbox"
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")


def settled_generation(request_id: str, timeout: float = 5.0):
    """The generation record, once the gateway has settled it (just after the response's last byte)."""
    from gateway.models import Generation

    deadline = time.monotonic() + timeout
    while (generation := Generation.objects.filter(request_id=request_id).first()) is None:
        assert time.monotonic() < deadline, f"generation {request_id} was never recorded"
        time.sleep(0.02)
    return generation


def no_leases_left(slug: str) -> None:
    """With the Redis meter: every lease the provider's calls took is back (given back a moment after its
    call ended, by a task of its own)."""
    from billing import mirror
    from core.hot_settings import hot
    from gateway.provider_slots import leases_name

    if hot.GATEWAY_METER != "redis":
        return
    deadline = time.monotonic() + 2
    while mirror.sync_client().exists(leases_name(slug)):
        assert time.monotonic() < deadline, "a lease stayed in Redis after its call ended"
        time.sleep(0.02)


@pytest.fixture
def llama_model(gateway_url, monkeypatch):
    """The real llama-cpp-python server's test model in the catalog (tests/gateway/llamacpp_server.py)."""
    from tests.gateway.llamacpp_server import MODEL, URL  # imported here: that module imports this one

    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "")  # a local server without auth
    serve_model_from(MODEL, [("llamacpp", f"{URL}/v1")])


def serve_model_from(
    slug: str,
    routes: list[tuple[str, str]],
    *,
    prompt_price="1",
    completion_price="2",
    features: tuple[str, ...] = (),
    options: dict | None = None,
    kind: str = "chat",
    dimensions: int | None = None,
) -> None:
    """Put a model in the catalog whose routes (kind, base_url), in order, point at fakes.

    Every route's provider reads its key from FAKE_UPSTREAM_KEY; the caller sets that variable. `features`
    are the model's (e.g. "tools"), `options` every route's; `kind="embedding"` (with `dimensions`) makes an
    embedding model.
    """
    from catalog.models import Creator, Model, Provider, Route

    creator = Creator.objects.get(slug="hyperinfer")
    model = Model.objects.create(
        slug=slug, name=slug, creator=creator, context_length=32_000, position=999, features=list(features),
        max_output_tokens=0 if kind == "embedding" else 1_000, kind=kind, dimensions=dimensions,
        prompt_price=prompt_price, completion_price=0 if kind == "embedding" else completion_price,
    )  # fmt: skip
    for position, (kind, base_url) in enumerate(routes):
        provider = Provider.objects.create(
            slug=f"{slug.replace('/', '-')}-{position}", name=f"fake {kind}", kind=kind, base_url=base_url,
            credentials_env="FAKE_UPSTREAM_KEY", timeout_seconds=5,
        )  # fmt: skip
        Route.objects.create(
            model=model, provider=provider, upstream_model_id="fake-model", position=position,
            options=options or {},
        )  # fmt: skip
    catalog_cache.invalidate()
