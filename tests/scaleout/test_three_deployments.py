"""Scale-out (issue 18, ADR 0017): three gateway deployments — separate uvicorn process groups on separate
ports, as separate hosts would be — on one PostgreSQL and one Redis (a plain one, then a Redis Cluster)
keep every money invariant of design §4 between them: one balance is never overspent, a key's rate limit
is global, and a revoked key stops everywhere within a second; and a provider's max_concurrency holds
across all of them (ADR 0029), and a route one of them finds failing is tried last by all (ADR 0027). Only the
upstreams are fakes."""

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import pytest
from django.db.models import Sum

from billing import mirror
from billing.models import CreditAccount, EntryKind, LedgerEntry
from billing.services import ledger_sum
from catalog.models import Provider
from console.services.keys import api_key_create, api_key_revoke
from gateway import route_health
from gateway.audit import ledger_audit
from gateway.auth import KEY_CACHE_SECONDS
from gateway.models import Generation
from gateway.provider_slots import leases_name
from tests.factories import make_user, make_workspace
from tests.fakes.openai_dialects import DialectFake, Scenario, openai_fake
from tests.gateway.conftest import serve_model_from
from tests.rate_windows import a_fresh_minute
from tests.scaleout.deployments import WORKERS, deployments, production_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

DEPLOYMENTS = 3
PER_DEPLOYMENT = 200
AFFORDABLE = 100
MODEL = "test/scaleout"
MAX_TOKENS = 10
COMPLETION_PRICE = 10  # USD per million tokens: 10 micro-USD a token
# The held worst case is the prompt at price 0 plus MAX_TOKENS at the completion price, and the upstream
# answers with exactly MAX_TOKENS completion tokens: each request settles at what it held. So exactly
# AFFORDABLE requests are admitted whether a request settles before the last one is admitted or after
# (the upstream's short answers make both happen): a settled request frees nothing for another.
COST = MAX_TOKENS * COMPLETION_PRICE
RATE_LIMIT_RPM = 50
# A key cached just before its revocation committed is forgotten this long after (gateway/auth.py), plus
# the few milliseconds between a worker's database read and its caching of the key.
REVOCATION_SECONDS = KEY_CACHE_SECONDS + 0.1
# A model whose one provider serves PROVIDER_LIMIT requests at once (max_concurrency), each in ~0.4 s: six
# gateway processes, each of which would send it that many if each counted alone.
LIMITED_MODEL = "test/scaleout-limited"
PROVIDER_LIMIT = 2
# A model of two routes whose first takes requests and never answers (its provider's timeout 1 s).
COOLING_MODEL = "test/scaleout-cooling"
SILENT_TIMEOUT = 1


@dataclass
class Stack:
    urls: list[str]  # the deployments'
    limited: DialectFake  # LIMITED_MODEL's upstream: it counts the requests it serves at once


def chat(max_tokens: int = MAX_TOKENS, model: str = MODEL) -> dict:
    return {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]}


async def burst(urls: list[str], key: str, per_url: int, model: str = MODEL) -> list[tuple[int, dict, str]]:
    """`per_url` concurrent chat completions to each deployment, all at once: (status, JSON body, request
    id) each."""
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(url: str) -> tuple[int, dict, str]:
            body = chat(model=model)
            async with session.post(f"{url}/api/v1/chat/completions", json=body, headers=headers) as answer:
                body = json.loads(await answer.read())
                return answer.status, body, answer.headers["x-request-id"]

        # interleaved: answer i came from deployment i % len(urls)
        return await asyncio.gather(*(one(url) for _ in range(per_url) for url in urls))


def wait_until_written(
    workspace_id, completed: int, timeout: float = 20, logs: Callable[[], str] = lambda: ""
) -> None:
    """Until the deployments' writers have put every settled record in PostgreSQL (refusals are recorded
    too, as failed generations that cost nothing) and accounted for it in Redis: a writer takes a batch's
    costs off the mirror's unflushed figures just after its commit, so a batch still in flight is waited
    for too."""
    generations = Generation.objects.filter(workspace_id=workspace_id, status="completed")
    deadline = time.monotonic() + timeout
    while True:
        written, queued, in_flight = generations.count(), mirror.queued_records(), batches_in_flight()
        if written >= completed and queued == 0 and in_flight == 0:
            return
        assert time.monotonic() < deadline, (
            f"the metering writers did not drain the queues: {written} of {completed} generations written, "
            f"{queued} records queued, {in_flight} batches in flight\n{logs()}"
        )
        time.sleep(0.1)


def batches_in_flight() -> int:
    """The batches a writer has taken and not yet accounted for, in every shard."""
    client = mirror.sync_client()
    return sum(int(client.zcard(mirror.inflights(shard))) for shard in mirror.shards())


def still_held(workspace_id, request_ids: list[str]) -> list[str]:
    """Those of the requests whose hold is still in Redis (in their workspace's shard's holds)."""
    holds = mirror.holds(mirror.shard_of(workspace_id))
    scores = mirror.sync_client().zmscore(holds, request_ids)
    return [request_id for request_id, score in zip(request_ids, scores, strict=True) if score is not None]


@pytest.fixture
def stack(meter_redis, shipped_catalog, tmp_path, monkeypatch, settings):
    """The fake upstream, the model, and three deployments metering on the test's Redis (`meter_redis`:
    REDIS_URL's, or the session's Redis Cluster through METER_REDIS_URL and METER_REDIS_CLUSTER)."""
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "test-key")
    slow = Scenario(failure="slow_first_byte", delay=0.4)
    with (
        openai_fake("fireworks", Scenario(text="ok", completion_tokens=MAX_TOKENS)) as upstream,
        openai_fake("cerebras", slow) as limited,
        openai_fake("cerebras", Scenario(failure="slow_first_byte", delay=30)) as silent,
        openai_fake("cerebras", Scenario(text="from the second")) as second,
    ):
        serve_model_from(
            MODEL,
            [("fireworks", upstream.base_url)],
            prompt_price=Decimal(0),
            completion_price=Decimal(COMPLETION_PRICE),
        )
        serve_model_from(LIMITED_MODEL, [("openai_compatible", limited.url + "/v1")])
        Provider.objects.filter(slug="test-scaleout-limited-0").update(
            max_concurrency=PROVIDER_LIMIT, max_queued=50, queue_timeout_seconds=30
        )
        serve_model_from(
            COOLING_MODEL,
            [("openai_compatible", silent.url + "/v1"), ("openai_compatible", second.url + "/v1")],
        )
        Provider.objects.filter(slug="test-scaleout-cooling-0").update(timeout_seconds=SILENT_TIMEOUT)
        meter = {"REDIS_URL": settings.REDIS_URL, "FAKE_UPSTREAM_KEY": "test-key"}
        if meter_redis == "cluster":
            meter |= {"METER_REDIS_URL": settings.METER_REDIS_URL, "METER_REDIS_CLUSTER": "true"}
        with deployments(DEPLOYMENTS, production_env(meter), tmp_path) as running:
            yield Stack([deployment.url for deployment in running], limited)


def one_balance_is_never_overspent(stack: list[str]) -> None:
    owner = make_user()
    # One request to each deployment first, from the same balance: each spends from it (so it really is
    # shared), and each has its Redis client and mirror warm, so the burst is not won by whichever started
    # first. What is left then affords exactly AFFORDABLE.
    workspace = make_workspace(owner=owner, credits_micro_usd=(DEPLOYMENTS + AFFORDABLE) * COST)
    key = api_key_create(workspace=workspace, name="shared", created_by=owner).secret
    first = asyncio.run(burst(stack, key, 1))
    assert [status for status, _, _ in first] == [200] * DEPLOYMENTS

    answers = asyncio.run(burst(stack, key, PER_DEPLOYMENT))

    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {200: AFFORDABLE, 402: DEPLOYMENTS * PER_DEPLOYMENT - AFFORDABLE}, statuses
    refusals = [body["error"] for status, body, _ in answers if status == 402]
    assert {(error["code"], error["type"]) for error in refusals} == {
        ("insufficient_credits", "insufficient_quota")
    }

    answered = DEPLOYMENTS + AFFORDABLE
    wait_until_written(workspace.pk, answered)
    generations = Generation.objects.filter(workspace=workspace)
    assert generations.filter(status="completed").count() == answered
    costs = generations.aggregate(total=Sum("cost_micro_usd"))["total"]
    debits = LedgerEntry.objects.filter(workspace=workspace, kind=EntryKind.USAGE)
    assert -debits.aggregate(total=Sum("amount_micro_usd"))["total"] == costs == answered * COST
    account = CreditAccount.objects.get(workspace=workspace)
    assert account.balance_micro_usd == ledger_sum(workspace_id=workspace.pk) == 0
    assert still_held(workspace.pk, [request_id for _, _, request_id in first + answers]) == []
    mirrored = mirror.sync_client().hgetall(mirror.workspace_hash(workspace.pk))
    assert (int(mirrored[b"bal"]), int(mirrored[b"held"]), int(mirrored[b"unfl"])) == (0, 0, 0)


def a_keys_rate_limit_is_global(stack: list[str]) -> None:
    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=1_000_000)
    key = api_key_create(
        workspace=workspace, name="limited", created_by=owner, rate_limit_rpm=RATE_LIMIT_RPM
    ).secret
    a_fresh_minute()

    answers = asyncio.run(burst(stack, key, 40))

    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {200: RATE_LIMIT_RPM, 429: DEPLOYMENTS * 40 - RATE_LIMIT_RPM}, statuses
    assert {body["error"]["code"] for status, body, _ in answers if status == 429} == {"rate_limit_exceeded"}
    wait_until_written(workspace.pk, RATE_LIMIT_RPM)


async def poll_until(urls: list[str], key: str, seconds: float) -> list[tuple[int, float, int]]:
    """Each deployment asked again and again for `seconds`: (deployment, when a request was sent, status)."""
    headers = {"Authorization": f"Bearer {key}"}
    seen: list[tuple[int, float, int]] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:

        async def ask(index: int, url: str) -> None:
            while time.monotonic() < deadline:
                sent = time.monotonic()
                async with session.post(
                    f"{url}/api/v1/chat/completions", json=chat(), headers=headers
                ) as answer:
                    await answer.read()
                    seen.append((index, sent, answer.status))
                await asyncio.sleep(0.02)

        await asyncio.gather(*(ask(index, url) for index, url in enumerate(urls)))
    return seen


def a_revoked_key_stops_everywhere_within_a_second(stack: list[str]) -> None:
    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=1_000_000)
    issued = api_key_create(workspace=workspace, name="soon revoked", created_by=owner)
    # Every deployment (each of its workers, likely) has the key cached as valid.
    before = asyncio.run(burst(stack, issued.secret, 8))
    assert {status for status, _, _ in before} == {200}

    api_key_revoke(api_key=issued.record, acting_user=owner)
    revoked_at = time.monotonic()
    seen = asyncio.run(poll_until(stack, issued.secret, REVOCATION_SECONDS + 0.5))

    for index in range(DEPLOYMENTS):
        late = [
            status
            for deployment, sent, status in seen
            if deployment == index and sent > revoked_at + REVOCATION_SECONDS
        ]
        assert late and set(late) == {401}, (index, late)
    answered = sum(1 for _, _, status in seen if status == 200)
    wait_until_written(workspace.pk, len(before) + answered)


def a_providers_limit_holds_across_deployments(stack: Stack) -> None:
    """Four requests to each deployment at once for a provider that takes two: every one is answered, in
    turn, and the provider never has more than two under way."""
    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=1_000_000)
    key = api_key_create(workspace=workspace, name="limited provider", created_by=owner).secret

    answers = asyncio.run(burst(stack.urls, key, 4, model=LIMITED_MODEL))

    assert [status for status, _, _ in answers] == [200] * DEPLOYMENTS * 4, answers
    assert len(stack.limited.chat_requests) == DEPLOYMENTS * 4
    assert stack.limited.most_in_flight == PROVIDER_LIMIT
    wait_until_written(workspace.pk, DEPLOYMENTS * 4)
    assert mirror.sync_client().exists(leases_name("test-scaleout-limited-0")) == 0  # every slot given back


async def timed_answer(url: str, key: str) -> tuple[str, float]:
    """One chat completion of COOLING_MODEL on a connection of its own: its text and how long it took."""
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        body, headers = chat(model=COOLING_MODEL), {"Authorization": f"Bearer {key}"}
        async with session.post(f"{url}/api/v1/chat/completions", json=body, headers=headers) as answer:
            assert answer.status == 200, await answer.text()
            text = (await answer.json())["choices"][0]["message"]["content"]
    return text, time.monotonic() - started


def a_route_one_deployment_finds_failing_is_tried_last_by_all(stack: Stack) -> None:
    """The first deployment's requests, one after another, wait out the silent route's timeout until one of
    its processes has failed on it FAILURES_TO_COOL times; from then on the other deployments' requests —
    which never tried it — go to the second route at once (each of their four processes would otherwise
    wait the timeout three times first)."""
    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=1_000_000)
    key = api_key_create(workspace=workspace, name="cooling", created_by=owner).secret
    first_deployment, *others = stack.urls
    waited = 0
    while True:
        text, took = asyncio.run(timed_answer(first_deployment, key))
        assert text == "from the second"
        if took < SILENT_TIMEOUT:
            break
        waited += 1
        # At worst each worker fails it FAILURES_TO_COOL times itself: the requests alternate between them,
        # and the last of the other worker's comes before it has read the first one's cooldown.
        assert waited <= WORKERS * route_health.FAILURES_TO_COOL, "the route never cooled"
    assert waited >= route_health.FAILURES_TO_COOL
    time.sleep(route_health.FOLLOW_SECONDS + 0.5)  # every process has read Redis since

    async def to_the_others() -> list[tuple[str, float]]:
        return await asyncio.gather(*(timed_answer(url, key) for url in others for _ in range(4)))

    answers = asyncio.run(to_the_others())
    assert {text for text, _ in answers} == {"from the second"}
    assert max(took for _, took in answers) < SILENT_TIMEOUT, answers
    wait_until_written(workspace.pk, waited + 1 + len(answers))


def test_three_deployments_share_one_balance_one_rate_limit_and_one_revocation(stack):
    """One test per Redis (plain, cluster): starting three deployments is most of its time."""
    one_balance_is_never_overspent(stack.urls)
    a_keys_rate_limit_is_global(stack.urls)
    a_revoked_key_stops_everywhere_within_a_second(stack.urls)
    a_providers_limit_holds_across_deployments(stack)
    a_route_one_deployment_finds_failing_is_tried_last_by_all(stack)
    assert ledger_audit() == []
