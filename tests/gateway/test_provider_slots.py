"""A provider's `max_concurrency` (gateway/provider_slots.py, ADR 0029): a route whose provider has that
many requests under way is sent no more; a request waits its turn in the provider's queue (`max_queued`,
`queue_timeout_seconds`), or goes to its model's next route, or gets provider_overloaded. The slots alone
here are a process's own count (the SQL meter's); those shared through Redis: test_shared_provider_slots.py.
Through the gateway, a few tests run with both meters."""

import asyncio
import threading
import time

import httpx
import pytest

from catalog.models import Provider
from core.errors import ErrorCode
from gateway import provider_slots
from gateway.catalog_cache import catalog_cache
from gateway.provider_slots import ProviderFull, ProviderSlots, slots_for
from gateway.route_health import route_health
from gateway.upstreams.base import ProviderInfo
from tests.fakes.openai_dialects import openai_fake
from tests.fakes.openai_scenario import Scenario
from tests.gateway.conftest import no_leases_left, serve_model_from, settled_generation
from tests.gateway.server_tools_client import ask, body_for


def provider(limit: int | None = 2, queued: int = 0, timeout: float = 5.0, slug: str = "p") -> ProviderInfo:
    return ProviderInfo(
        slug, "openai_compatible", "http://x", "k", 5.0,
        max_concurrency=limit, max_queued=queued, queue_timeout_seconds=timeout,
    )  # fmt: skip


# --- The slots alone ------------------------------------------------------------------------------------


def test_the_queue_is_first_come_first_served_and_a_full_one_refuses_at_once():
    async def scenario() -> None:
        slots = ProviderSlots(provider(queued=2), 2)
        await slots.take()
        await slots.take()
        order: list[str] = []

        async def wait(name: str) -> None:
            await slots.take()
            order.append(name)

        first, second = asyncio.create_task(wait("first")), asyncio.create_task(wait("second"))
        await asyncio.sleep(0)
        assert (slots.under_way, len(slots.waiting)) == (2, 2)
        started = time.monotonic()
        with pytest.raises(ProviderFull) as refused:  # two wait already: the third is turned away
            await slots.take()
        assert time.monotonic() - started < 0.05
        assert refused.value.code == ErrorCode.PROVIDER_OVERLOADED and refused.value.retry_after == "1"
        slots.give_back()
        slots.give_back()
        await asyncio.gather(first, second)
        assert order == ["first", "second"]
        assert (slots.under_way, len(slots.waiting)) == (2, 0)  # handed over, not freed and taken again
        slots.give_back()
        slots.give_back()
        assert slots.under_way == 0

    asyncio.run(scenario())


def test_a_request_waits_its_queue_timeout_at_most():
    async def scenario() -> None:
        slots = ProviderSlots(provider(limit=1, queued=5, timeout=0.2), 1)
        await slots.take()
        started = time.monotonic()
        with pytest.raises(ProviderFull, match=r"no slot within 0\.2 s"):
            await slots.take()
        assert 0.15 < time.monotonic() - started < 1.0
        assert (slots.under_way, len(slots.waiting)) == (1, 0)  # it left the queue

    asyncio.run(scenario())


def test_a_request_cancelled_while_waiting_leaves_the_queue_and_a_slot_handed_to_it_goes_on():
    async def scenario() -> None:
        slots = ProviderSlots(provider(limit=1, queued=5), 1)
        await slots.take()
        gone = asyncio.create_task(slots.take())
        await asyncio.sleep(0)
        gone.cancel()  # its client left while it waited
        await asyncio.gather(gone, return_exceptions=True)
        assert len(slots.waiting) == 0

        handed = asyncio.create_task(slots.take())
        after = asyncio.create_task(slots.take())
        await asyncio.sleep(0)
        slots.give_back()  # the slot is handed to `handed`…
        handed.cancel()  # …which is cancelled before it runs again: `after` gets it
        await asyncio.gather(handed, return_exceptions=True)
        await asyncio.wait_for(after, 1)
        assert (slots.under_way, len(slots.waiting)) == (1, 0)
        slots.give_back()
        assert slots.under_way == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("ending", ["read to the end", "closed early", "failed"])
def test_a_call_holds_its_slot_until_its_events_end_and_closes_them_first(ending):
    async def scenario() -> None:
        slots = ProviderSlots(provider(limit=1), 1)
        closed: list[bool] = []

        async def upstream():
            try:
                yield 1
                if ending == "failed":
                    raise RuntimeError("cut")
                yield 2
            finally:
                closed.append(slots.under_way == 1)  # closed while the slot is still held

        await slots.take()
        events = slots.holding(upstream())
        assert await anext(events) == 1
        assert slots.under_way == 1
        if ending == "read to the end":
            assert [event async for event in events] == [2]
        elif ending == "closed early":
            await events.aclose()
        else:
            with pytest.raises(RuntimeError):
                await anext(events)
        assert closed == [True]
        assert slots.under_way == 0

    asyncio.run(scenario())


def test_a_higher_limit_from_the_catalog_lets_those_waiting_in():
    async def scenario() -> None:
        slots = slots_for(provider(limit=1, queued=5), 1)
        await slots.take()
        waiting = asyncio.create_task(slots.take())
        await asyncio.sleep(0)
        assert slots_for(provider(limit=2, queued=5), 2) is slots
        await asyncio.wait_for(waiting, 1)
        assert (slots.limit, slots.under_way, len(slots.waiting)) == (2, 2, 0)

    asyncio.run(scenario())


# --- Through the gateway ---------------------------------------------------------------------------------

SLOW = Scenario(failure="slow_first_byte", delay=1.5)  # then the answer, whole or streamed


@pytest.fixture(params=["sql", pytest.param("redis", marks=pytest.mark.redis)])
def meter(request, settings, monkeypatch) -> str:
    """Either meter: with the SQL meter the process counts a provider's slots alone, with the Redis meter
    they are leases in Redis (shared with every other process). Before `gateway_url` in a test's
    arguments, so the server starts with it."""
    settings.GATEWAY_METER = request.param
    settings.WEB_SEARCH_BACKEND = "sandbox"
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    return request.param


def limit(slug: str, max_concurrency: int, max_queued: int = 0, queue_timeout_seconds: int = 10) -> None:
    Provider.objects.filter(slug=slug).update(
        max_concurrency=max_concurrency, max_queued=max_queued, queue_timeout_seconds=queue_timeout_seconds
    )
    catalog_cache.invalidate()


def ask_at_once(
    gateway_url: str, key: str, model: str, n: int, *, stream: bool = False
) -> list[httpx.Response]:
    answers: list[httpx.Response | None] = [None] * n

    def ask(i: int) -> None:
        with httpx.Client(base_url=gateway_url, timeout=30) as client:
            answers[i] = client.post(
                "/api/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
            )

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.mark.django_db(transaction=True)
def test_a_full_provider_sends_the_rest_to_the_next_route_without_cooling_it(
    gateway_url, funded_key, sql_meter
):
    _, key = funded_key
    with openai_fake("cerebras", SLOW) as limited, openai_fake("cerebras", SLOW) as other:
        serve_model_from(
            "test/slots",
            [("openai_compatible", limited.url + "/v1"), ("openai_compatible", other.url + "/v1")],
        )
        limit("test-slots-0", 2)
        answers = ask_at_once(gateway_url, key, "test/slots", 5)
        assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
        assert limited.most_in_flight == 2
        assert (len(limited.chat_requests), len(other.chat_requests)) == (2, 3)
        for answer in answers:
            assert settled_generation(answer.headers["x-request-id"]).status == "completed"
        assert route_health._failures == {}  # turned away is not failed: nothing cools
        ask_at_once(gateway_url, key, "test/slots", 1)
        assert len(limited.chat_requests) == 3  # the limited route is first again


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True])
def test_with_no_route_left_the_client_gets_provider_overloaded_and_pays_nothing(
    meter, gateway_url, funded_key, stream
):
    workspace, key = funded_key
    with openai_fake("cerebras", SLOW) as fake:
        serve_model_from("test/one-slot", [("openai_compatible", fake.url + "/v1")])
        limit("test-one-slot-0", 1)
        answers = ask_at_once(gateway_url, key, "test/one-slot", 3, stream=stream)
    by_status = sorted(answers, key=lambda a: a.status_code)
    assert [a.status_code for a in by_status] == [200, 529, 529], [a.text for a in by_status]
    assert len(fake.chat_requests) == 1
    for refused in by_status[1:]:
        assert refused.headers["retry-after"] == "1"
        error = refused.json()["error"]
        assert error["code"] == "provider_overloaded"
        assert "limit of concurrent requests" in error["message"]
        generation = settled_generation(refused.headers["x-request-id"])
        assert (generation.status, generation.error_code, generation.cost_micro_usd) == (
            "failed", "provider_overloaded", 0
        )  # fmt: skip
    served = settled_generation(by_status[0].headers["x-request-id"])
    workspace.credit_account.refresh_from_db()
    assert workspace.credit_account.balance_micro_usd == 5_000_000 - served.cost_micro_usd
    no_leases_left("test-one-slot-0")


@pytest.mark.django_db(transaction=True)
def test_queued_requests_are_all_answered_one_at_a_time(gateway_url, funded_key, sql_meter):
    _, key = funded_key
    with openai_fake("cerebras", Scenario(text="y" * 20, piece=5, frame_interval=0.05)) as fake:
        serve_model_from("test/queue", [("openai_compatible", fake.url + "/v1")])
        limit("test-queue-0", 1, max_queued=8)
        answers = ask_at_once(gateway_url, key, "test/queue", 6, stream=True)
    assert [a.status_code for a in answers] == [200] * 6, [a.text[:300] for a in answers]
    assert all(a.text.rstrip().endswith("data: [DONE]") for a in answers)
    assert (fake.most_in_flight, len(fake.chat_requests)) == (1, 6)


@pytest.mark.django_db(transaction=True)
def test_a_request_queued_past_the_timeout_is_refused(gateway_url, funded_key, sql_meter):
    _, key = funded_key
    with openai_fake("cerebras", Scenario(failure="slow_first_byte", delay=3)) as fake:
        serve_model_from("test/wait", [("openai_compatible", fake.url + "/v1")])
        limit("test-wait-0", 1, max_queued=1, queue_timeout_seconds=1)
        started = time.monotonic()
        answers = ask_at_once(gateway_url, key, "test/wait", 2)
        refused = next(a for a in answers if a.status_code != 200)
    assert sorted(a.status_code for a in answers) == [200, 529]
    assert refused.json()["error"]["code"] == "provider_overloaded"
    assert len(fake.chat_requests) == 1
    assert time.monotonic() - started >= 3  # the one served waited out the slow provider


@pytest.mark.django_db(transaction=True)
def test_a_client_leaving_mid_stream_or_in_the_queue_frees_its_place(meter, gateway_url, funded_key):
    _, key = funded_key
    with openai_fake("cerebras", Scenario(text="z" * 200, piece=5, frame_interval=0.1)) as fake:
        serve_model_from("test/leave", [("openai_compatible", fake.url + "/v1")])
        limit("test-leave-0", 1, max_queued=1, queue_timeout_seconds=30)
        body = {"model": "test/leave", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {key}"}

        def leave_after(seconds: float, reading: float = 0.0) -> None:
            """Waits `seconds` for the answer's head; with it, reads a line and leaves `reading` later."""
            with httpx.Client(base_url=gateway_url, timeout=30) as client:
                try:
                    with client.stream(
                        "POST", "/api/v1/chat/completions", json=body, headers=headers, timeout=seconds
                    ) as answer:
                        lines = answer.iter_lines()  # kept: dropped, it would close the response
                        next(lines)
                        time.sleep(reading)
                except httpx.TimeoutException:
                    pass  # a client that gave up waiting for the head

        slots = None

        def wait_for(under_way: int, waiting: int) -> None:
            deadline = time.monotonic() + 5
            while (slots.under_way, len(slots.waiting)) != (under_way, waiting):
                assert time.monotonic() < deadline, (slots.under_way, len(slots.waiting))
                time.sleep(0.02)

        streaming = threading.Thread(target=leave_after, args=(5, 1.5))
        streaming.start()
        deadline = time.monotonic() + 5
        while (slots := provider_slots._by_slug.get("test-leave-0")) is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        wait_for(1, 0)
        queued = threading.Thread(target=leave_after, args=(0.5,))
        queued.start()
        wait_for(1, 1)
        queued.join()  # gone before its turn
        wait_for(1, 0)
        streaming.join()  # gone mid-stream
        wait_for(0, 0)
        assert len(fake.chat_requests) == 1  # the queued one never reached the provider
        no_leases_left("test-leave-0")
        answer = ask_at_once(gateway_url, key, "test/leave", 1)[0]  # the slot is free again
        assert answer.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_embeddings_take_the_providers_slots_too(gateway_url, funded_key, sql_meter):
    _, key = funded_key
    slow = Scenario(failure="slow_first_byte", delay=1)
    with openai_fake("llamacpp", slow) as limited, openai_fake("llamacpp", Scenario()) as other:
        serve_model_from(
            "test/embed-slots",
            [("llamacpp", limited.base_url), ("llamacpp", other.base_url)],
            kind="embedding",
            dimensions=4,
        )
        limit("test-embed-slots-0", 1)
        answers: list[httpx.Response] = []

        def embed() -> None:
            with httpx.Client(base_url=gateway_url, timeout=30) as client:
                answers.append(
                    client.post(
                        "/api/v1/embeddings",
                        headers={"Authorization": f"Bearer {key}"},
                        json={"model": "test/embed-slots", "input": "one two"},
                    )
                )

        threads = [threading.Thread(target=embed) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [a.status_code for a in answers] == [200] * 3
    assert (limited.most_in_flight, len(limited.embedding_requests), len(other.embedding_requests)) == (
        1,
        1,
        2,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True])
def test_a_server_tool_loop_takes_a_slot_a_step_and_none_while_its_tools_run(
    meter, gateway_url, funded_key, stream
):
    """One slot, no queue: a two-step loop (the model calls web_search, then answers from it) is served,
    each step in the slot the step before gave back."""
    _, key = funded_key
    search = Scenario(tool_call=("web_search", '{"query": "HyperInfer"}'))
    with openai_fake("cerebras", search) as fake:
        serve_model_from("test/slot-tools", [("cerebras", fake.base_url)], features=("tools",))
        limit("test-slot-tools-0", 1)
        body = body_for("chat", "test/slot-tools", "search", ["web_search"], stream=stream, events=False)
        answer = ask("chat", gateway_url, key, body)
    assert answer.text.startswith("From the tool: ")
    assert (len(fake.chat_requests), fake.most_in_flight) == (2, 1)
    assert settled_generation(answer.request_id).status == "completed"
    assert provider_slots._by_slug["test-slot-tools-0"].under_way == 0
    no_leases_left("test-slot-tools-0")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("failure", ["server_error", "cut", "stream_error", "malformed", "stall"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_call_that_fails_gives_its_slot_back(gateway_url, funded_key, sql_meter, failure, stream):
    """A provider that fails before its first byte, mid-stream, or goes silent past its timeout: the slot
    is free again once the request is over, and the next request is served."""
    _, key = funded_key
    with openai_fake("cerebras", Scenario(failure=failure, delay=3)) as fake:
        serve_model_from("test/slot-fails", [("openai_compatible", fake.url + "/v1")])
        Provider.objects.filter(slug="test-slot-fails-0").update(timeout_seconds=1)
        limit("test-slot-fails-0", 1)
        failed = ask_at_once(gateway_url, key, "test/slot-fails", 1, stream=stream)[0]
        assert failed.status_code != 200 or "provider_" in failed.text  # an error status, or in the stream
        settled_generation(failed.headers["x-request-id"])
        slots = provider_slots._by_slug["test-slot-fails-0"]
        assert (slots.under_way, len(slots.waiting)) == (0, 0)
        fake.scenario = Scenario()
        answer = ask_at_once(gateway_url, key, "test/slot-fails", 1, stream=stream)[0]
    assert answer.status_code == 200 and "provider_" not in answer.text
