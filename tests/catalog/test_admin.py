"""Operators see the catalog in Django admin, with the warning that providers.yaml wins."""

from pathlib import Path

import pytest
from django.urls import reverse

from catalog.loader import catalog_load
from catalog.models import Model

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["creator", "provider", "model", "route"])
def test_changelists_render_with_the_source_of_truth_note(
    admin_client, shipped_path: Path, name: str
) -> None:
    catalog_load(shipped_path)
    response = admin_client.get(reverse(f"admin:catalog_{name}_changelist"), {"q": "llama"})
    assert response.status_code == 200
    assert "providers.yaml is the source of truth" in response.content.decode()


def test_model_change_form_shows_routes_inline(admin_client, shipped_path: Path) -> None:
    catalog_load(shipped_path)
    model = Model.objects.get(slug="meta-llama/llama-3.1-8b")
    response = admin_client.get(reverse("admin:catalog_model_change", args=[model.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "llama3.1-8b" in body  # the route's upstream model id, from the inline
    assert "catalog_load" in body


def test_live_figures_are_listed_read_only(admin_client, shipped_path: Path) -> None:
    from tests.catalog.traffic import roll_up_and_refresh

    catalog_load(shipped_path)
    roll_up_and_refresh()
    response = admin_client.get(reverse("admin:catalog_modelfigures_changelist"), {"q": "llama"})
    assert response.status_code == 200
    assert "meta-llama/llama-3.1-8b" in response.content.decode()
    assert admin_client.get(reverse("admin:catalog_modelfigures_add")).status_code == 403


def test_the_provider_form_offers_the_registered_kinds(admin_client) -> None:
    page = admin_client.get(reverse("admin:catalog_provider_add")).content.decode()
    select = page[
        page.index('<select name="kind"') : page.index("</select>", page.index('<select name="kind"'))
    ]
    assert '<option value="llamacpp">llama.cpp / Jan</option>' in select
    assert '<option value="mock">Mock (offline sandbox)</option>' in select
    refused = admin_client.post(
        reverse("admin:catalog_provider_add"),
        {"slug": "x", "name": "X", "kind": "fireworks", "datacenter_locations": "[]", "timeout_seconds": 60},
    )
    assert "Required for kind &#x27;fireworks&#x27;." in refused.content.decode()
