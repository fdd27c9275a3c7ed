"""Server tool prices (ADR 0013): read from providers.yaml's `server_tools:`, validated, synced into the
database exactly, and priced to the micro-dollar, rounded once per tool, up."""

from decimal import Decimal

import pytest

from catalog.fields import CatalogError
from catalog.loader import catalog_load, catalog_parse
from catalog.models import ToolPrice
from catalog.pricing import tool_costs_micro_usd


def test_the_shipped_prices_load_and_a_second_load_keeps_them(shipped_path, db):
    catalog_load(shipped_path)
    catalog_load(shipped_path)
    prices = {(p.tool, p.unit): p.price_usd for p in ToolPrice.objects.all()}
    assert prices == {
        ("web_search", "call"): Decimal("0.005"),
        ("web_search", "result"): Decimal("0"),
        ("web_fetch", "call"): Decimal("0.001"),
        ("datetime", "call"): Decimal("0"),
        ("pdf", "page"): Decimal("0.0002"),
        ("image", "image"): Decimal("0.04"),
    }


def test_a_yaml_number_is_read_as_its_text_like_model_prices(shipped_data, write_catalog):
    shipped_data["server_tools"] = {"web_fetch": {"call": 0.001}}
    [price] = catalog_parse(write_catalog(shipped_data)).tool_prices
    assert price.price == Decimal("0.001")  # not the float's binary expansion


def test_a_price_the_file_no_longer_lists_is_dropped(shipped_data, write_catalog, db):
    catalog_load(write_catalog(shipped_data))
    shipped_data["server_tools"] = {"web_search": {"call": "0.01"}}
    catalog_load(write_catalog(shipped_data))
    assert list(ToolPrice.objects.values_list("tool", "unit", "price_usd")) == [
        ("web_search", "call", Decimal("0.010000000"))
    ]


@pytest.mark.parametrize(
    ("server_tools", "message"),
    [
        ({"web_crawl": {"call": "1"}}, r"server_tools\.web_crawl: unknown key"),
        ({"web_search": {"token": "1"}}, r"server_tools\.web_search\.token: unknown key"),
        ({"web_fetch": {"call": "-0.1"}}, r"server_tools\.web_fetch\.call"),
        ({"web_fetch": {"call": "0.0000000001"}}, r"at most 9 decimal places"),
        ({"web_fetch": {"call": "free"}}, r"server_tools\.web_fetch\.call: must be a non-negative number"),
        ({"web_fetch": "0.001"}, r"server_tools\.web_fetch: must be a mapping"),
    ],
)
def test_a_bad_price_is_refused_naming_where(shipped_data, write_catalog, server_tools, message):
    shipped_data["server_tools"] = server_tools
    with pytest.raises(CatalogError, match=message):
        catalog_parse(write_catalog(shipped_data))


def test_costs_are_units_at_their_prices_rounded_once_per_tool_up():
    prices = {
        ("web_search", "call"): Decimal("0.005"),
        ("web_search", "result"): Decimal("0.0000003"),
        ("web_fetch", "call"): Decimal("0.001"),
    }
    used = [
        ("web_search", {"call": 1, "result": 5}),  # 5000 + 1.5
        ("web_search", {"call": 1, "result": 1}),  # 5000 + 0.3
        ("web_fetch", {"call": 1}),
        ("datetime", {"call": 3}),  # no price: free, and left out
    ]
    assert tool_costs_micro_usd(prices, used) == {"web_search": 10_002, "web_fetch": 1_000}
    with pytest.raises(ValueError):
        tool_costs_micro_usd(prices, [("web_fetch", {"call": -1})])
