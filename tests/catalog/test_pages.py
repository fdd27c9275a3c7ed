"""The public catalog list (/models/) through Django's test client, and its filter function, on the shipped
catalog (a model's own page: test_model_page.py)."""

import datetime
import html
import re
from decimal import Decimal

import pytest

from catalog.browse import ModelQuery, browse_models
from catalog.models import Model
from catalog.selectors import models_active
from tests.catalog.helpers import get
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
