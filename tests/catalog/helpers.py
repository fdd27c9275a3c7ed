import re
from typing import Any

from django.test import Client


def find(data: dict[str, Any], section: str, slug: str) -> dict[str, Any]:
    """The entry with this slug in a parsed providers.yaml section (creators, providers or models)."""
    return next(entry for entry in data[section] if entry["slug"] == slug)


def find_model(data: dict[str, Any], slug: str) -> dict[str, Any]:
    return find(data, "models", slug)


def get(client: Client, url: str) -> str:
    """A catalog page's HTML, asserting it answered 200."""
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def section(page: str, section_id: str) -> str:
    """The HTML of the <section id=…> (sections do not nest on these pages)."""
    match = re.search(rf'<section[^>]*id="{section_id}"[^>]*>(.*?)</section>', page, re.S)
    assert match, f"no section #{section_id}"
    return match.group(1)
