"""A model is available on a deployment when at least one of its providers can be called: its key is set in
the environment, or its kind needs none. The catalog says so (API and pages), and the gateway refuses an
unavailable model with provider_unavailable at once, and skips a route without its key."""

import httpx
import pytest

from catalog.models import Model
from catalog.selectors import models_active
from gateway.catalog_cache import catalog_cache
from tests.gateway.conftest import funded_key, gateway_url  # noqa: F401  (fixtures: the site on uvicorn, a key)

pytestmark = pytest.mark.django_db
KIMI = "moonshotai/kimi-k2-instruct-0905"


def listed(client) -> dict[str, bool]:
    return {item["slug"]: item["available"] for item in client.get("/api/v1/models").json()["data"]}


def test_a_model_is_available_once_one_of_its_providers_has_its_key(client, shipped_catalog, monkeypatch):
    for model in models_active():
        for route in model.routes.all():
            if route.provider.credentials_env:
                monkeypatch.delenv(route.provider.credentials_env, raising=False)
    kimi = Model.objects.get(slug=KIMI)
    envs = [route.provider.credentials_env for route in kimi.routes.all()]
    assert envs and all(envs)  # every route of it needs a key
    before = listed(client)
    assert before[KIMI] is False
    assert before["hyperinfer/sandbox"] is True  # the sandbox needs no key
    monkeypatch.setenv(envs[-1], "a-key")
    assert listed(client)[KIMI] is True
    page = client.get(f"/models/{KIMI}/").content.decode()
    assert 'data-testid="unavailable"' not in page
    monkeypatch.delenv(envs[-1])
    assert 'data-testid="unavailable"' in client.get(f"/models/{KIMI}/").content.decode()
    assert "Not available here" in client.get("/models/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_gateway_refuses_an_unconfigured_model_by_name_before_any_upstream(
    gateway_url,  # noqa: F811
    funded_key,  # noqa: F811
    monkeypatch,
):
    kimi = Model.objects.get(slug=KIMI)
    for route in kimi.routes.all():
        monkeypatch.delenv(route.provider.credentials_env, raising=False)
    catalog_cache.invalidate()
    _, secret = funded_key
    body = {"model": KIMI, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    response = httpx.post(
        f"{gateway_url}/api/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "provider_unavailable" and error["param"] == "model"
    assert "not available on this deployment" in error["message"]
