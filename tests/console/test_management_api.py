from datetime import timedelta

import pytest
from django.utils import timezone

from billing import reservations
from console.api.views import CreditsSerializer, KeyRateLimitSerializer, KeySerializer
from console.models import ApiKey
from console.services.keys import api_key_create, api_key_revoke
from console.services.workspaces import workspace_lock
from tests.factories import make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def issued():
    workspace = make_workspace(credits_micro_usd=5_000_000)
    return api_key_create(
        workspace=workspace, name="svc", created_by=None, limit_micro_usd=2_000_000, rate_limit_rpm=60
    )


@pytest.mark.billing_layer  # settled through the billing services: no generation record
def test_credits_report_the_balance_and_usage_exactly(client, issued):
    workspace = issued.record.workspace
    reservations.reserve(
        workspace_id=workspace.id, api_key_id=issued.record.id, amount_micro_usd=900_000, request_id="r1"
    )
    reservations.settle(request_id="r1", actual_cost_micro_usd=123_457)
    response = client.get("/api/v1/credits", HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert response.status_code == 200 and response["X-Request-Id"]
    data = response.json()["data"]
    assert data["balance_micro_usd"] == "4876543"
    assert data["total_usage_micro_usd"] == "123457"
    assert data["total_credits"] == 5.0 and data["total_usage"] == 0.123457


@pytest.mark.parametrize(
    "headers",
    [{"HTTP_AUTHORIZATION": "Bearer {}"}, {"HTTP_X_API_KEY": "{}"}, {"HTTP_AUTHORIZATION": "Api-Key {}"}],
)
def test_the_key_endpoint_accepts_every_header_form(client, issued, headers):
    filled = {name: value.format(issued.secret) for name, value in headers.items()}
    response = client.get("/api/v1/key", **filled)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["name"] == "svc" and data["prefix"] == issued.record.prefix
    assert data["limit"] == 2.0 and data["limit_remaining"] == 2.0
    assert data["rate_limit"] == {"requests_per_minute": 60}
    assert ApiKey.objects.get(pk=issued.record.pk).last_used_at is not None


@pytest.mark.parametrize(
    ("path", "serializer"), [("/api/v1/credits", CreditsSerializer), ("/api/v1/key", KeySerializer)]
)
def test_each_response_is_its_serializers_fields_in_order(client, issued, path, serializer):
    body = client.get(path, HTTP_AUTHORIZATION=f"Bearer {issued.secret}").json()
    assert list(body) == ["data"]
    assert list(body["data"]) == list(serializer().fields)


def test_amounts_are_exact_strings_and_usd_numbers_and_times_keep_their_offset(client, issued):
    key = issued.record
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(days=2))
    key.refresh_from_db()
    data = client.get("/api/v1/key", HTTP_AUTHORIZATION=f"Bearer {issued.secret}").json()["data"]
    assert data["usage_micro_usd"] == "0" and data["usage"] == 0.0 and isinstance(data["usage"], float)
    assert data["limit"] == 2.0 and data["limit_reset"] == "none" and data["workspace"] == key.workspace.slug
    assert list(data["rate_limit"]) == list(KeyRateLimitSerializer().fields)
    assert data["expires_at"] == key.expires_at.isoformat() and data["expires_at"].endswith("+00:00")
    assert data["created_at"] == key.created_at.isoformat()
    summary = client.get("/api/v1/credits", HTTP_AUTHORIZATION=f"Bearer {issued.secret}").json()["data"]
    assert summary == {
        "total_credits": 5.0,
        "total_usage": 0.0,
        "balance": 5.0,
        "balance_micro_usd": "5000000",
        "reserved_micro_usd": "0",
        "available_micro_usd": "5000000",
        "total_usage_micro_usd": "0",
    }


def assert_error(response, status: int, code: str):
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["request_id"] == response["X-Request-Id"]


def test_missing_unknown_revoked_and_expired_keys_get_invalid_api_key(client, issued):
    assert_error(client.get("/api/v1/key"), 401, "invalid_api_key")
    assert_error(client.get("/api/v1/key", HTTP_AUTHORIZATION="Bearer hi-nope"), 401, "invalid_api_key")
    other = api_key_create(workspace=issued.record.workspace, name="old", created_by=None)
    ApiKey.objects.filter(pk=other.record.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert_error(
        client.get("/api/v1/key", HTTP_AUTHORIZATION=f"Bearer {other.secret}"), 401, "invalid_api_key"
    )
    api_key_revoke(api_key=issued.record, acting_user=None)
    assert_error(
        client.get("/api/v1/key", HTTP_AUTHORIZATION=f"Bearer {issued.secret}"), 401, "invalid_api_key"
    )


def test_a_locked_workspace_gets_workspace_locked(client, issued):
    workspace_lock(workspace=issued.record.workspace, reason="abuse review")
    assert_error(
        client.get("/api/v1/credits", HTTP_AUTHORIZATION=f"Bearer {issued.secret}"), 403, "workspace_locked"
    )
