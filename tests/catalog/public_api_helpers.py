"""What the public catalog API's tests (tests/catalog/test_public_api_*.py) share: the model most of them
read, and the `data` of a GET /api/v1/models or /api/v1/models/{slug} answer, keyed by slug when a listing."""

from typing import Any

KIMI = "moonshotai/kimi-k2-instruct-0905"


def data_of(client, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def by_slug(items: list[dict], key: str = "slug") -> dict[str, dict]:
    return {item[key]: item for item in items}
