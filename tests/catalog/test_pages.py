"""The public catalog pages (/models/ and /models/<creator>/<name>/) through Django's test client, and the
list's filter function on the shipped catalog."""

import datetime
import html
import json
import re
from decimal import Decimal

import pytest
from django.test import Client

from catalog.browse import ModelQuery, browse_models
from catalog.models import Model
from catalog.selectors import models_active
from gateway.models import GenerationStatus
from tests.catalog.traffic import record_generation, roll_up_and_refresh
from tests.factories import make_user, make_workspace

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("shipped_catalog")]
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)
CATALOG_ORDER = [
    "deepseek/deepseek-v4-pro",
    "moonshotai/kimi-k2-instruct-0905",
    "meta-llama/llama-3.1-70b",
    "meta-llama/llama-3.1-8b",
    "local/llama-cpp",
    "hyperinfer/sandbox-pro",
    "hyperinfer/sandbox",
    "hyperinfer/sandbox-embed",
]


@pytest.fixture
def workspace():
    return make_workspace()


def card_slugs(page: str) -> list[str]:
    return re.findall(r'data-testid="model-card" data-slug="([^"]+)"', page)


def selected_option(page: str, name: str) -> str | None:
    select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select, f"no <select name={name}>"
    chosen = re.findall(r'<option value="([^"]*)" selected>', select.group(1))
    assert len(chosen) <= 1
    return chosen[0] if chosen else None


def input_value(page: str, name: str) -> str:
    return html.unescape(re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page).group(1))


def get(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def section(page: str, section_id: str) -> str:
    """The HTML of the <section id=…> (sections do not nest on these pages)."""
    match = re.search(rf'<section[^>]*id="{section_id}"[^>]*>(.*?)</section>', page, re.S)
    assert match, f"no section #{section_id}"
    return match.group(1)


# --- the filter function ---------------------------------------------------------------------------------


def slugs_for(params: dict[str, str], volumes: dict[str, int] | None = None) -> list[str]:
    query = ModelQuery.from_params(params)
    return [model.slug for model in browse_models(models_active(), query, weekly_volumes=volumes or {})]


def test_no_parameters_list_every_active_model_in_catalog_order():
    assert slugs_for({}) == CATALOG_ORDER
    assert not ModelQuery.from_params({}).is_filtered


def test_search_matches_name_slug_or_description_ignoring_case():
    assert slugs_for({"q": "KIMI"}) == ["moonshotai/kimi-k2-instruct-0905"]  # the name
    assert slugs_for({"q": "llama-3.1"}) == ["meta-llama/llama-3.1-70b", "meta-llama/llama-3.1-8b"]  # slugs
    assert slugs_for({"q": "Wafer-Scale"}) == ["meta-llama/llama-3.1-70b"]  # only in its description
    assert slugs_for({"q": "  sandbox  "}) == [
        "hyperinfer/sandbox-pro",
        "hyperinfer/sandbox",
        "hyperinfer/sandbox-embed",
    ]
    assert slugs_for({"q": "no such model anywhere"}) == []


def test_each_filter_narrows_the_list():
    assert slugs_for({"feature": "reasoning"}) == ["deepseek/deepseek-v4-pro", "hyperinfer/sandbox-pro"]
    assert slugs_for({"feature": "prompt_caching"}) == ["hyperinfer/sandbox-pro"]
    assert slugs_for({"feature": "vision"}) == []
    assert slugs_for({"creator": "meta-llama"}) == ["meta-llama/llama-3.1-70b", "meta-llama/llama-3.1-8b"]
    assert slugs_for({"creator": "MoonshotAI"}) == ["moonshotai/kimi-k2-instruct-0905"]
    # The maximum prompt price is inclusive: Llama 3.1 8B costs exactly $0.10.
    assert slugs_for({"max_price": "0.10"}) == [
        "meta-llama/llama-3.1-8b",
        "local/llama-cpp",
        "hyperinfer/sandbox",
        "hyperinfer/sandbox-embed",
    ]
    assert slugs_for({"max_price": "0"}) == ["local/llama-cpp", "hyperinfer/sandbox"]
    assert slugs_for({"min_context": "131072"}) == [
        "deepseek/deepseek-v4-pro",
        "moonshotai/kimi-k2-instruct-0905",
        "hyperinfer/sandbox-pro",
    ]
    assert slugs_for({"min_context": "262145"}) == []


def test_filters_combine():
    params = {"q": "llama", "max_price": "0.5", "min_context": "16000", "feature": "tools"}
    assert slugs_for(params) == ["meta-llama/llama-3.1-8b"]
    assert ModelQuery.from_params(params).is_filtered


def test_each_sort_order():
    assert slugs_for({"sort": "catalog"}) == CATALOG_ORDER
    # Cheapest prompt first, then cheapest completion; ties keep catalog order.
    assert slugs_for({"sort": "price"}) == [
        "local/llama-cpp",
        "hyperinfer/sandbox",
        "hyperinfer/sandbox-embed",
        "meta-llama/llama-3.1-8b",
        "meta-llama/llama-3.1-70b",
        "moonshotai/kimi-k2-instruct-0905",
        "hyperinfer/sandbox-pro",
        "deepseek/deepseek-v4-pro",
    ]
    assert slugs_for({"sort": "context"}) == [
        "moonshotai/kimi-k2-instruct-0905",
        "deepseek/deepseek-v4-pro",
        "hyperinfer/sandbox-pro",
        "meta-llama/llama-3.1-70b",
        "meta-llama/llama-3.1-8b",
        "hyperinfer/sandbox",
        "local/llama-cpp",
        "hyperinfer/sandbox-embed",  # 8,192 like llama.cpp: the tie keeps catalog order
    ]
    volumes = {"hyperinfer/sandbox": 900, "meta-llama/llama-3.1-8b": 5_000, "deepseek/deepseek-v4-pro": 10}
    assert slugs_for({"sort": "volume"}, volumes)[:4] == [
        "meta-llama/llama-3.1-8b",
        "hyperinfer/sandbox",
        "deepseek/deepseek-v4-pro",
        "moonshotai/kimi-k2-instruct-0905",  # no traffic: catalog order
    ]


def test_newest_sorts_by_release_date_else_by_when_the_catalog_listed_the_model():
    undated = [
        "deepseek/deepseek-v4-pro",
        "local/llama-cpp",
        "hyperinfer/sandbox-pro",
        "hyperinfer/sandbox",
        "hyperinfer/sandbox-embed",
    ]
    Model.objects.filter(slug__in=undated).update(
        created_at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    )
    Model.objects.filter(slug="hyperinfer/sandbox").update(
        created_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    )
    assert slugs_for({"sort": "newest"}) == [
        "hyperinfer/sandbox",  # listed 2026-01-01
        "moonshotai/kimi-k2-instruct-0905",  # released 2025-09-05
        "meta-llama/llama-3.1-70b",  # released 2024-07-23, the two in catalog order
        "meta-llama/llama-3.1-8b",
        "deepseek/deepseek-v4-pro",  # listed 2024-01-01
        "local/llama-cpp",
        "hyperinfer/sandbox-pro",
        "hyperinfer/sandbox-embed",
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"max_price": "cheap", "min_context": "lots"},
        {"max_price": "-1", "min_context": "-5"},
        {"max_price": "NaN", "min_context": "0"},
        {"feature": "teleportation", "sort": "random"},
    ],
)
def test_values_that_do_not_parse_are_ignored(params):
    query = ModelQuery.from_params(params)
    assert query == ModelQuery()
    assert slugs_for(params) == CATALOG_ORDER


def test_parsed_query_keeps_typed_values():
    query = ModelQuery.from_params(
        {
            "q": " Llama ",
            "feature": "tools",
            "creator": "Meta-Llama",
            "max_price": "0.6",
            "min_context": "8192",
        }
    )
    assert query == ModelQuery(
        search="Llama",
        feature="tools",
        creator="meta-llama",
        max_prompt_price=Decimal("0.6"),
        min_context=8192,
    )


# --- the list page ---------------------------------------------------------------------------------------


def test_the_list_needs_no_login_and_shows_every_active_model(client, workspace):
    Model.objects.filter(slug="local/llama-cpp").update(is_active=False)
    record_generation(
        workspace=workspace,
        model="meta-llama/llama-3.1-8b",
        ago=HOUR,
        tokens_prompt=1_000,
        tokens_completion=500,
    )
    record_generation(workspace=workspace, model="meta-llama/llama-3.1-8b", ago=8 * DAY, tokens_prompt=9_000)
    roll_up_and_refresh()
    page = get(client, "/models/")

    assert card_slugs(page) == [slug for slug in CATALOG_ORDER if slug != "local/llama-cpp"]
    assert "Local llama.cpp model" not in page
    assert 'data-testid="result-count">7 models<' in page
    card = page[page.index('data-slug="meta-llama/llama-3.1-8b"') :]
    card = card[: card.index("</article>")]
    assert 'href="/models/meta-llama/llama-3.1-8b/"' in card
    assert "Llama 3.1 8B Instruct" in card
    assert 'style="--brand: #0467DF"' in card and "by Meta" in card
    assert 'class="description clamp-2"' in card and "classification" in card
    assert "<strong>32K</strong> context" in card
    assert "<strong>$0.10</strong>/M input" in card and "<strong>$0.10</strong>/M output" in card
    assert [b for b in re.findall(r'<li class="badge">([^<]+)</li>', card)] == [
        "Tool calling",
        "JSON mode",
        "Streaming",
    ]
    # 1,500 tokens this week; the 9,000 of 8 days ago are not in the weekly figure.
    assert "<strong>1.5K</strong> tokens / week" in card and 'title="1,500 tokens in the last 7 days"' in card
    deepseek = page[page.index('data-slug="deepseek/deepseek-v4-pro"') :]
    assert "by DeepSeek" in deepseek and "--brand: #4D6BFE" in deepseek
    assert "<strong>$1</strong>/M input" in deepseek and "<strong>$3</strong>/M output" in deepseek
    assert "<strong>128K</strong> context" in deepseek and "<strong>0</strong> tokens / week" in deepseek


def test_search_by_get_parameter_keeps_the_value_in_the_form(client):
    page = get(client, "/models/?q=wafer")
    assert card_slugs(page) == ["meta-llama/llama-3.1-70b"]
    assert input_value(page, "q") == "wafer"
    assert 'data-testid="result-count">1 of 8 models<' in page
    assert 'href="/models/">Clear all</a>' in page


def test_search_text_is_escaped_back_into_the_form(client):
    page = get(client, '/models/?q="><script>alert(1)</script>')
    assert "<script>alert(1)</script>" not in page
    assert input_value(page, "q") == '"><script>alert(1)</script>'


@pytest.mark.parametrize(
    ("params", "field", "value", "expected"),
    [
        ("feature=reasoning", "feature", "reasoning", ["deepseek/deepseek-v4-pro", "hyperinfer/sandbox-pro"]),
        (
            "creator=meta-llama",
            "creator",
            "meta-llama",
            ["meta-llama/llama-3.1-70b", "meta-llama/llama-3.1-8b"],
        ),
        ("min_context=262144", "min_context", "262144", ["moonshotai/kimi-k2-instruct-0905"]),
    ],
)
def test_each_select_filter_by_get_parameter_stays_selected(client, params, field, value, expected):
    page = get(client, f"/models/?{params}")
    assert card_slugs(page) == expected
    assert selected_option(page, field) == value
    for other in {"feature", "creator", "min_context"} - {field}:
        assert selected_option(page, other) is None


def test_max_price_filter_by_get_parameter_keeps_its_value(client):
    page = get(client, "/models/?max_price=0.1")
    assert card_slugs(page) == [
        "meta-llama/llama-3.1-8b",
        "local/llama-cpp",
        "hyperinfer/sandbox",
        "hyperinfer/sandbox-embed",
    ]
    assert input_value(page, "max_price") == "0.1"


def test_the_creator_filter_offers_the_creators_of_listed_models(client):
    page = get(client, "/models/")
    select = re.search(r'<select[^>]*name="creator"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert re.findall(r'<option value="([^"]+)"', select) == [
        "deepseek",
        "hyperinfer",
        "local",
        "meta-llama",
        "moonshotai",
    ]


@pytest.mark.parametrize(
    ("sort", "first"),
    [
        ("catalog", "deepseek/deepseek-v4-pro"),
        ("newest", None),  # checked below
        ("price", "local/llama-cpp"),
        ("context", "moonshotai/kimi-k2-instruct-0905"),
        ("volume", "hyperinfer/sandbox"),
    ],
)
def test_each_sort_order_by_get_parameter(client, workspace, sort, first):
    record_generation(workspace=workspace, model="hyperinfer/sandbox", ago=HOUR)
    roll_up_and_refresh()
    Model.objects.update(created_at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
    page = get(client, f"/models/?sort={sort}")
    slugs = card_slugs(page)
    assert sorted(slugs) == sorted(CATALOG_ORDER)
    assert slugs[0] == (first or "moonshotai/kimi-k2-instruct-0905")
    assert selected_option(page, "sort") == sort
    assert 'form="model-filters"' in page  # the sort menu submits with the filters


def test_sort_and_filters_combine_in_one_link(client):
    page = get(client, "/models/?creator=hyperinfer&sort=price")
    assert card_slugs(page) == ["hyperinfer/sandbox", "hyperinfer/sandbox-embed", "hyperinfer/sandbox-pro"]


def test_an_empty_result_says_no_models_match(client):
    page = get(client, "/models/?q=nothing-like-this&feature=vision")
    assert card_slugs(page) == []
    assert 'data-testid="no-results"' in page and "No models match these filters." in page
    assert 'data-testid="result-count">0 of 8 models<' in page


def test_the_nav_links_to_the_models_for_visitors_and_signed_in_users(client):
    assert 'href="/models/">Models</a>' in get(client, "/login/")
    user = make_user()
    make_workspace(owner=user)
    client.force_login(user)
    assert 'href="/models/">Models</a>' in get(client, "/dashboard/")
    assert card_slugs(get(client, "/models/")) == CATALOG_ORDER


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
