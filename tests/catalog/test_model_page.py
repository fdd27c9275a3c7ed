"""A model's public page (/models/<creator>/<name>/) through Django's test client, on the shipped catalog:
pricing and limits, benchmarks, live figures, snippets, and what an embedding model shows instead."""

import datetime
import html
import json
import re

import pytest

from catalog.models import Model
from gateway.models import GenerationStatus
from tests.catalog.helpers import get, section
from tests.catalog.traffic import record_generation, roll_up_and_refresh

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_utc_day", "shipped_catalog")]
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)


# --- a model's page --------------------------------------------------------------------------------------


def chart_data(page: str) -> list[dict]:
    match = re.search(r'<script id="daily-volume-data" type="application/json">(.*?)</script>', page, re.S)
    assert match, "no json_script chart data"
    return json.loads(match.group(1))


def test_a_model_page_has_every_section(client):
    page = get(client, "/models/meta-llama/llama-3.1-70b/")
    assert '<h1 data-testid="model-name">Llama 3.1 70B Instruct</h1>' in page
    assert "by Meta" in page and "--brand: #0467DF" in page
    assert "wafer-scale hardware" in page
    assert '<time datetime="2024-07-23">Jul 23, 2024</time>' in page
    assert 'href="https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct"' in page
    for section_id in ("pricing", "usage", "performance", "providers", "benchmarks", "api"):
        section(page, section_id)
    pricing = section(page, "pricing")
    assert '<h2>Prompt</h2><p class="big">$0.60</p>' in pricing
    assert '<h2>Completion</h2><p class="big">$0.60</p>' in pricing
    assert "Cached prompt" not in pricing  # not set for this model
    assert '<p class="big">32K</p><p class="muted">32,768 tokens</p>' in pricing
    assert '<h2>Max output</h2><p class="big">8K</p><p class="muted">8,192 tokens</p>' in pricing
    features = re.search(r'<ul class="badges" id="features".*?</ul>', page, re.S).group(0)
    assert re.findall(r'<li class="badge">([^<]+)</li>', features) == [
        "Tool calling",
        "JSON mode",
        "Streaming",
    ]
    providers = section(page, "providers")
    assert "Cerebras" in providers and '<span class="tag">US</span>' in providers
    assert "Datacenters: US." in providers


def test_the_cached_prompt_price_shows_when_set(client):
    pricing = section(get(client, "/models/hyperinfer/sandbox-pro/"), "pricing")
    assert '<h2>Cached prompt</h2><p class="big">$0.15</p>' in pricing
    assert '<h2>Completion</h2><p class="big">$2.50</p>' in pricing


def benchmark(label: str, score: float, unit: str, tier: str, *, mode: str = "") -> dict:
    data: dict = {"label": label, "score": score, "unit": unit}
    if mode:
        data["mode"] = mode
    return {**data, "source_url": f"https://example.org/{label.lower()}", "tier": tier}


def test_benchmarks_show_primary_first_with_units_modes_and_source_links(client):
    Model.objects.filter(slug="meta-llama/llama-3.1-70b").update(
        benchmarks=[
            benchmark("MMLU", 83.6, "%", "primary"),
            benchmark("Arena", 1250, "elo", "primary", mode="High"),
            benchmark("GPQA", 41.7, "%", "extra"),
        ]
    )
    benchmarks = section(get(client, "/models/meta-llama/llama-3.1-70b/"), "benchmarks")
    items = re.findall(r'<li class="benchmark (\w+)" data-testid="benchmark">(.*?)</li>', benchmarks, re.S)
    assert [tier for tier, _ in items] == ["primary", "primary", "extra"]
    mmlu, arena, gpqa = (body for _, body in items)
    assert "MMLU" in mmlu and '<span class="bench-score">83.6%</span>' in mmlu
    assert 'href="https://example.org/mmlu"' in mmlu
    assert '<span class="tag">High</span>' in arena and '1250 <span class="unit">elo</span>' in arena
    assert 'href="https://example.org/arena"' in arena
    assert "GPQA" in gpqa and "41.7%" in gpqa and 'href="https://example.org/gpqa"' in gpqa


def test_the_shipped_benchmarks_link_to_their_source(client):
    benchmarks = section(get(client, "/models/meta-llama/llama-3.1-8b/"), "benchmarks")
    source = "https://github.com/meta-llama/llama-models/blob/main/models/llama3_1/MODEL_CARD.md"
    assert benchmarks.count(f'href="{source}"') == 3
    assert "72.6 <span" in benchmarks and "pass@1" in benchmarks


def test_a_model_without_benchmarks_says_so(client):
    assert "No published benchmarks yet." in section(
        get(client, "/models/deepseek/deepseek-v4-pro/"), "benchmarks"
    )


def test_live_figures_weekly_volume_chart_data_and_performance(client, workspace):
    slug = "meta-llama/llama-3.1-8b"
    record_generation(
        workspace=workspace,
        model=slug,
        ago=HOUR,
        tokens_prompt=1_000,
        tokens_completion=200,
        ttft_ms=100,
        latency_ms=1_100,
    )
    record_generation(
        workspace=workspace,
        model=slug,
        ago=2 * HOUR,
        tokens_prompt=500,
        tokens_completion=300,
        ttft_ms=300,
        latency_ms=3_300,
    )
    record_generation(
        workspace=workspace,
        model=slug,
        ago=3 * HOUR,
        status=GenerationStatus.FAILED,
        tokens_prompt=0,
        tokens_completion=0,
    )
    record_generation(workspace=workspace, model=slug, ago=3 * DAY, tokens_prompt=4_000, tokens_completion=0)
    record_generation(workspace=workspace, model=slug, ago=12 * DAY, tokens_prompt=7_000, tokens_completion=0)
    record_generation(workspace=workspace, model=slug, ago=40 * DAY, tokens_prompt=9_999, tokens_completion=0)
    record_generation(workspace=workspace, model="meta-llama/llama-3.1-70b", ago=HOUR, tokens_prompt=777)
    roll_up_and_refresh()  # as beat does every minute: rollups, then figures

    page = get(client, f"/models/{slug}/")
    assert '<p class="big" data-testid="weekly-volume">6K</p>' in page  # 1,200 + 800 + 4,000
    assert "6,000 in the last 7 days" in page

    days = chart_data(page)
    assert len(days) == 30
    today = datetime.datetime.now(datetime.UTC).date()
    assert days[-1]["date"] == today.isoformat()
    assert days[0]["date"] == (today - datetime.timedelta(days=29)).isoformat()
    by_day = {day["date"]: day["tokens"] for day in days}
    assert by_day[(today - datetime.timedelta(days=3)).isoformat()] == 4_000
    assert by_day[(today - datetime.timedelta(days=12)).isoformat()] == 7_000
    assert sum(by_day.values()) == 2_000 + 4_000 + 7_000  # the 40-day-old one is outside the chart
    assert "13,000 tokens in total" in section(page, "usage")
    assert 'id="volume-chart" data-chart="daily-volume" data-source="daily-volume-data"' in page
    assert "/static/catalog/volume_chart.js" in page

    performance = section(page, "performance")
    assert "No traffic yet" not in performance
    # TTFT median of 100 and 300 ms; speeds (200-1)/1s and (300-1)/3s; 2 of 3 requests completed.
    assert '<dd data-testid="ttft">200 ms</dd>' in performance
    assert '<dd data-testid="speed">149.3 tok/s</dd>' in performance
    assert '<dd data-testid="success-rate">66.7%</dd>' in performance
    assert "of 3 requests" in performance


def test_a_model_without_traffic_says_no_traffic_yet(client, workspace):
    record_generation(workspace=workspace, model="hyperinfer/sandbox", ago=2 * DAY)  # older than a day
    roll_up_and_refresh()
    page = get(client, "/models/hyperinfer/sandbox/")
    assert "No traffic yet" in section(page, "performance")
    assert 'data-testid="ttft"' not in page
    assert sum(day["tokens"] for day in chart_data(page)) == 150


def test_snippets_fill_in_the_slug_and_the_sites_own_url_in_three_formats(client):
    page = get(client, "/models/moonshotai/kimi-k2-instruct-0905/")
    api = section(page, "api")
    snippets = {
        key: html.unescape(re.search(rf'<code id="code-{key}"[^>]*>(.*?)</code>', api, re.S).group(1))
        for key in ("curl", "openai", "anthropic")
    }
    slug = "moonshotai/kimi-k2-instruct-0905"
    assert all(slug in code for code in snippets.values())
    assert snippets["curl"].startswith("curl http://testserver/api/v1/chat/completions \\\n")
    assert "Authorization: Bearer $HYPERINFER_API_KEY" in snippets["curl"]
    body = snippets["curl"].split("-d '", 1)[1].rsplit("'", 1)[0]
    assert json.loads(body)["model"] == slug
    assert 'OpenAI(base_url="http://testserver/api/v1"' in snippets["openai"]
    assert (
        "client.chat.completions.create(" in snippets["openai"]
        and "client.responses.create(" in snippets["openai"]
    )
    assert 'anthropic.Anthropic(base_url="http://testserver/api",' in snippets["anthropic"]
    assert "client.messages.create(" in snippets["anthropic"] and "max_tokens=1024" in snippets["anthropic"]
    for code in (snippets["openai"], snippets["anthropic"]):
        compile(code, "snippet", "exec")  # valid Python
    for endpoint in ("POST /api/v1/chat/completions", "POST /api/v1/responses", "POST /api/v1/messages"):
        assert f"<code>{endpoint}</code>" in api
    for key in ("curl", "openai", "anthropic"):
        assert f'<button type="button" class="copy" data-copy="code-{key}" hidden>Copy</button>' in api
    assert "/static/catalog/snippets.js" in page


def test_the_anthropic_snippet_never_asks_for_more_than_the_models_max_output(client):
    Model.objects.filter(slug="hyperinfer/sandbox").update(max_output_tokens=512)
    api = section(get(client, "/models/hyperinfer/sandbox/"), "api")
    assert "max_tokens=512" in api


def test_the_model_page_needs_no_login(client):
    response = client.get("/models/hyperinfer/sandbox/")
    assert response.status_code == 200
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.parametrize(
    "path",
    [
        "/models/nobody/nothing/",
        "/models/local/llama-cpp/",  # made inactive below
        "/models/meta-llama/",  # a creator, not a model
        "/models/meta-llama/llama-3.1-8b/extra/",
        "/models/Meta-Llama/Llama-3.1-8B/",  # slugs are lowercase
    ],
)
def test_unknown_inactive_or_malformed_slugs_are_404(client, path):
    Model.objects.filter(slug="local/llama-cpp").update(is_active=False)
    assert client.get(path).status_code == 404


def test_the_page_url_reverses_with_the_slash_in_the_slug():
    from django.urls import reverse

    assert (
        reverse("catalog:model", kwargs={"slug": "meta-llama/llama-3.1-8b"})
        == "/models/meta-llama/llama-3.1-8b/"
    )
    assert reverse("catalog:models") == "/models/"


def test_an_embedding_model_shows_its_dimensions_and_no_output(client):
    card = get(client, "/models/")
    card = card[card.index('data-slug="hyperinfer/sandbox-embed"') :]
    card = card[: card.index("</article>")]
    assert "<strong>256</strong> dimensions" in card and "/M output" not in card
    assert 'data-testid="embedding">Embeddings<' in card
    page = get(client, "/models/hyperinfer/sandbox-embed/")
    pricing = section(page, "pricing")
    assert 'data-testid="dimensions">256<' in pricing
    assert "Completion" not in pricing and "Max output" not in pricing
    assert "POST /api/v1/embeddings" in page and "client.embeddings.create(" in html.unescape(page)
