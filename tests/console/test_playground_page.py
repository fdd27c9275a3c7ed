"""The playground page and its key endpoint: a signed-in member gets one-time `chat` keys of the current
workspace, one per answer, by POST only; the page offers the catalog's models and the three formats."""

import pytest

from console.models import PlaygroundKey, PlaygroundSource
from console.services.keys import playground_key_redeem
from tests.factories import make_user, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_client(client):
    user = make_user()
    workspace = make_workspace(owner=user)
    client.force_login(user)
    return client, user, workspace


def test_a_key_is_minted_per_post_for_the_current_workspace_and_works_once(member_client):
    client, user, workspace = member_client
    first = client.post("/playground/key/")
    second = client.post("/playground/key/")
    assert first.status_code == second.status_code == 200
    assert "no-cache" in first["Cache-Control"] or "max-age=0" in first["Cache-Control"]
    secrets = [first.json()["key"], second.json()["key"]]
    assert secrets[0] != secrets[1]
    keys = PlaygroundKey.objects.filter(workspace=workspace, user=user)
    assert keys.count() == 2 and set(keys.values_list("source", flat=True)) == {PlaygroundSource.CHAT}
    redeemed = playground_key_redeem(secret=secrets[0])
    assert redeemed is not None and redeemed.workspace == workspace
    assert playground_key_redeem(secret=secrets[0]) is None  # once


def test_the_key_endpoint_takes_only_a_signed_in_post(member_client):
    client, _, _ = member_client
    assert client.get("/playground/key/").status_code == 405
    client.logout()
    assert client.post("/playground/key/").status_code == 302  # to the log-in page
    assert not PlaygroundKey.objects.exists()


def test_the_page_offers_the_catalogs_models_and_the_three_formats(member_client, shipped_catalog):
    client, _, _ = member_client
    body = client.get("/playground/").content.decode()
    for path in ("/api/v1/chat/completions", "/api/v1/responses", "/api/v1/messages"):
        assert f'data-path="{path}"' in body
    assert 'value="hyperinfer/sandbox-pro" data-max-output="16384" selected' in body
    assert 'value="hyperinfer/sandbox"' in body
    assert "hyperinfer/sandbox-embed" not in body  # an embedding model cannot chat
    chosen = client.get("/playground/?model=hyperinfer/sandbox").content.decode()
    assert 'value="hyperinfer/sandbox" data-max-output="4096" selected' in chosen
