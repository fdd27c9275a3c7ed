"""POST /api/v1/playground-keys, checked against the spec's own schemas."""

import pytest

from console.api import internal
from console.api.internal import PLAYGROUND_KEY_RESPONSE, PlaygroundKeySerializer
from console.errors import InvalidField
from console.services.keys import playground_key_redeem
from console.services.workspaces import workspace_lock
from tests.factories import make_user, make_workspace

pytestmark = pytest.mark.django_db
TOKEN = "internal-token-for-tests-0123456789abcdef"
PATH = "/api/v1/playground-keys"


@pytest.fixture(autouse=True)
def internal_token(settings):
    settings.INTERNAL_TOKEN = TOKEN


@pytest.fixture
def member():
    user = make_user()
    return user, make_workspace(owner=user)


def operation(spec: dict) -> dict:
    return spec["paths"][PATH]["post"]


def mint(client, body, token: str | None = TOKEN, **extra):
    headers = {"HTTP_X_INTERNAL_TOKEN": token} if token is not None else {}
    return client.post(PATH, body, content_type="application/json", **headers, **extra)


def test_mints_a_one_time_key_in_the_spec_shape(client, member, hyperinfer_spec, spec_validator):
    user, workspace = member
    response = mint(client, {"workspace_id": str(workspace.pk), "user_id": str(user.pk), "source": "chat"})
    assert response.status_code == 201
    body = response.json()
    spec_validator(
        body, operation(hyperinfer_spec)["responses"]["201"]["content"]["application/json"]["schema"]
    )
    assert body["source"] == "chat" and body["key"].startswith("hi-pg-")
    redeemed = playground_key_redeem(secret=body["key"])
    assert redeemed.workspace == workspace and redeemed.user == user
    assert playground_key_redeem(secret=body["key"]) is None


def test_the_response_serializer_writes_exactly_the_documented_shape(client, member):
    fields = PlaygroundKeySerializer().fields
    assert list(fields) == PLAYGROUND_KEY_RESPONSE["required"] == list(PLAYGROUND_KEY_RESPONSE["properties"])
    assert list(fields["source"].choices) == PLAYGROUND_KEY_RESPONSE["properties"]["source"]["enum"]
    user, workspace = member
    body = mint(client, {"workspace_id": str(workspace.pk), "user_id": str(user.pk)}).json()
    assert list(body) == list(fields)


def test_source_defaults_to_playground(client, member):
    user, workspace = member
    response = mint(client, {"workspace_id": str(workspace.pk), "user_id": str(user.pk)})
    assert response.json()["source"] == "playground"


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_without_the_internal_token_it_refuses(client, member, token, hyperinfer_spec, spec_validator):
    user, workspace = member
    response = mint(client, {"workspace_id": str(workspace.pk), "user_id": str(user.pk)}, token=token)
    assert response.status_code == 401
    spec_validator(response.json(), {"$ref": "#/components/schemas/OpenAIError"})
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_an_unset_internal_token_disables_the_endpoint(client, member, settings):
    settings.INTERNAL_TOKEN = ""
    user, workspace = member
    response = mint(client, {"workspace_id": str(workspace.pk), "user_id": str(user.pk)}, token="")
    assert response.status_code == 401 and "disabled" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param", "status"),
    [
        ({"user_id": "1"}, "workspace_id", 400),
        ({"workspace_id": "{workspace}"}, "user_id", 400),
        ({"workspace_id": "{workspace}", "user_id": "{user}", "source": "cli"}, "source", 400),
        ({"workspace_id": 7, "user_id": "{user}"}, "workspace_id", 400),
        # Well formed, naming nothing: 404, the empty string too (the schema allows it).
        ({"workspace_id": "not-a-uuid", "user_id": "{user}"}, "workspace_id", 404),
        ({"workspace_id": "", "user_id": "{user}"}, "workspace_id", 404),
        ({"workspace_id": "{workspace}", "user_id": "999999"}, "user_id", 404),
        ({"workspace_id": "{workspace}", "user_id": ""}, "user_id", 404),
        ({"workspace_id": "{workspace}", "user_id": "{stranger}"}, "user_id", 400),
    ],
)
def test_bad_bodies_name_the_field(client, member, body, param, status, spec_validator):
    user, workspace = member
    stranger = make_user()
    values = {"{workspace}": str(workspace.pk), "{user}": str(user.pk), "{stranger}": str(stranger.pk)}
    filled = {name: values.get(value, value) for name, value in body.items()}
    response = mint(client, filled)
    assert response.status_code == status
    spec_validator(response.json(), {"$ref": "#/components/schemas/OpenAIError"})
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", param)
    assert error["message"].startswith(param)


def test_a_field_the_service_refuses_is_named_in_param(client, member, monkeypatch):
    def refuse(**kwargs):
        raise InvalidField("source", "must be one of playground, chat")

    monkeypatch.setattr(internal, "playground_key_mint", refuse)
    user, workspace = member
    response = mint(client, {"workspace_id": str(workspace.pk), "user_id": str(user.pk)})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "source")
    assert error["message"] == "source: must be one of playground, chat"


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"'])
def test_a_body_that_is_not_a_json_object_is_an_invalid_request(client, raw):
    response = client.post(PATH, raw, content_type="application/json", HTTP_X_INTERNAL_TOKEN=TOKEN)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_a_locked_workspace_gets_no_playground_key(client, member):
    user, workspace = member
    workspace_lock(workspace=workspace, reason="review")
    response = mint(client, {"workspace_id": str(workspace.pk), "user_id": str(user.pk)})
    assert response.status_code == 403 and response.json()["error"]["code"] == "workspace_locked"
