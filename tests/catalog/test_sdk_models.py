"""The official SDKs list and retrieve the catalog: `client.models.list()` and `models.retrieve(slug)` in the
OpenAI and Anthropic Python SDKs return the catalog's slugs as ids (the extensions on `/api/v1/models`)."""

import anthropic
import openai
import pytest

from catalog.models import Model
from tests.gateway.conftest import gateway_url  # noqa: F401  (the whole site on uvicorn)

pytestmark = [pytest.mark.django_db(transaction=True)]
SLUG = "hyperinfer/sandbox-pro"


def test_the_openai_sdk_lists_and_retrieves_models_by_slug(gateway_url):  # noqa: F811
    client = openai.OpenAI(base_url=f"{gateway_url}/api/v1", api_key="not-needed-for-the-catalog")
    listed = client.models.list()
    expected = list(
        Model.objects.filter(is_active=True).order_by("position", "slug").values_list("slug", flat=True)
    )
    assert sorted(model.id for model in listed) == sorted(expected)
    model = client.models.retrieve(SLUG)
    assert (model.id, model.object, model.owned_by) == (SLUG, "model", "hyperinfer")
    assert isinstance(model.created, int) and model.created > 0
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nobody/nothing")


def test_the_anthropic_sdk_lists_and_retrieves_models_by_slug(gateway_url):  # noqa: F811
    client = anthropic.Anthropic(base_url=f"{gateway_url}/api", api_key="not-needed-for-the-catalog")
    listed = list(client.models.list())  # iterates every page: one here, has_more is false
    assert (
        SLUG in [model.id for model in listed] and len(listed) == Model.objects.filter(is_active=True).count()
    )
    model = client.models.retrieve(SLUG)
    assert (model.id, model.type, model.display_name) == (SLUG, "model", "HyperInfer Sandbox Pro")
    assert model.created_at.year >= 2025
