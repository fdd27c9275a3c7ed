from typing import Any


def find(data: dict[str, Any], section: str, slug: str) -> dict[str, Any]:
    """The entry with this slug in a parsed providers.yaml section (creators, providers or models)."""
    return next(entry for entry in data[section] if entry["slug"] == slug)


def find_model(data: dict[str, Any], slug: str) -> dict[str, Any]:
    return find(data, "models", slug)
