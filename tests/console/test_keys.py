import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import KeySpend
from console.errors import InvalidField, NotPermitted
from console.models import ApiKey, PlaygroundKey, PlaygroundSource
from console.services.keys import (
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    api_key_update,
    playground_key_mint,
    playground_key_redeem,
)
from console.services.secrets import secret_hash
from console.services.workspaces import membership_add
from tests.factories import make_user, make_workspace

pytestmark = pytest.mark.django_db


def every_stored_value() -> str:
    """Every row of every table in the database, as text."""
    dumped = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            dumped.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(dumped)


def test_a_created_key_is_shown_once_and_stored_only_as_a_hash(caplog):
    caplog.set_level(logging.DEBUG)
    workspace = make_workspace()
    issued = api_key_create(workspace=workspace, name="backend", created_by=None)

    assert issued.secret.startswith("hi-") and len(issued.secret) == 43
    key = ApiKey.objects.get(pk=issued.record.pk)
    assert issued.secret.startswith(key.prefix) and len(key.prefix) == 11
    assert key.secret_hash == secret_hash(issued.secret) != issued.secret
    stored = every_stored_value()
    assert key.prefix in stored  # the dump really covers the keys table
    assert issued.secret not in stored
    assert issued.secret[len(key.prefix) :] not in stored
    assert issued.secret not in caplog.text


def test_keys_are_unique_and_authenticate_by_their_secret():
    workspace = make_workspace()
    first = api_key_create(workspace=workspace, name="a", created_by=None)
    second = api_key_create(workspace=workspace, name="b", created_by=None)
    assert first.secret != second.secret
    assert api_key_authenticate(secret=first.secret).pk == first.record.pk
    tampered = first.secret[:-1] + ("y" if first.secret.endswith("x") else "x")  # never the same secret
    assert api_key_authenticate(secret=tampered) is None
    assert api_key_authenticate(secret="sk-something-else") is None


def test_a_revoked_or_expired_key_no_longer_authenticates():
    workspace = make_workspace()
    revoked = api_key_create(workspace=workspace, name="old", created_by=None)
    api_key_revoke(api_key=revoked.record, acting_user=None)
    assert api_key_authenticate(secret=revoked.secret) is None

    expiring = api_key_create(
        workspace=workspace, name="temp", created_by=None, expires_at=timezone.now() + timedelta(hours=1)
    )
    assert api_key_authenticate(secret=expiring.secret) is not None
    ApiKey.objects.filter(pk=expiring.record.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_key_authenticate(secret=expiring.secret) is None


def test_key_options_are_validated_with_the_field_named():
    workspace = make_workspace()
    cases = {
        "name": {"name": " "},
        "limit_micro_usd": {"limit_micro_usd": -1},
        "limit_reset": {"limit_reset": "hourly"},
        "rate_limit_rpm": {"rate_limit_rpm": 0},
        "allowed_models": {"allowed_models": ["no/such-model"]},
        "expires_at": {"expires_at": timezone.now() - timedelta(days=1)},
    }
    for field, options in cases.items():
        kwargs = {"name": "k", **options}
        with pytest.raises(InvalidField, match=f"^{field}: ") as refused:
            api_key_create(workspace=workspace, created_by=None, **kwargs)
        assert refused.value.field == field
    assert not ApiKey.objects.exists()


def test_only_managers_or_the_creator_may_revoke_a_key():
    owner = make_user()
    workspace = make_workspace(owner=owner)
    member, other_member = make_user(), make_user()
    membership_add(workspace=workspace, user=member, acting_user=owner)
    membership_add(workspace=workspace, user=other_member, acting_user=owner)
    key = api_key_create(workspace=workspace, name="mine", created_by=member).record

    with pytest.raises(NotPermitted):
        api_key_revoke(api_key=key, acting_user=other_member)
    api_key_revoke(api_key=key, acting_user=member)
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None

    outsider = make_user()
    with pytest.raises(NotPermitted):
        api_key_create(workspace=workspace, name="sneaky", created_by=outsider)


def test_a_playground_key_works_once_within_ten_minutes():
    owner = make_user()
    workspace = make_workspace(owner=owner)
    issued = playground_key_mint(workspace=workspace, user=owner, source=PlaygroundSource.CHAT)
    record = issued.record
    assert issued.secret.startswith("hi-pg-")
    assert timedelta(minutes=9, seconds=59) < record.expires_at - record.created_at <= timedelta(minutes=10)
    assert issued.secret not in every_stored_value()
    # A playground key is not an API key.
    assert api_key_authenticate(secret=issued.secret) is None

    redeemed = playground_key_redeem(secret=issued.secret)
    assert redeemed.pk == record.pk and redeemed.source == "chat"
    assert playground_key_redeem(secret=issued.secret) is None


def test_an_expired_playground_key_is_refused():
    owner = make_user()
    workspace = make_workspace(owner=owner)
    issued = playground_key_mint(workspace=workspace, user=owner)
    PlaygroundKey.objects.filter(pk=issued.record.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert playground_key_redeem(secret=issued.secret) is None


def test_playground_keys_are_minted_only_for_members_and_known_sources():
    owner = make_user()
    workspace = make_workspace(owner=owner)
    with pytest.raises(NotPermitted, match="user_id"):
        playground_key_mint(workspace=workspace, user=make_user())
    with pytest.raises(InvalidField, match="source"):
        playground_key_mint(workspace=workspace, user=owner, source="cli")


def test_editing_a_key_changes_its_limits_and_a_new_period_starts_the_spend_afresh():
    owner = make_user()
    workspace = make_workspace(owner=owner)
    key = api_key_create(workspace=workspace, name="svc", created_by=owner, limit_micro_usd=1_000).record
    KeySpend.objects.filter(api_key=key).update(used_micro_usd=700, reserved_micro_usd=100)

    api_key_update(
        api_key=key,
        acting_user=owner,
        name="svc v2",
        limit_micro_usd=2_000,
        limit_reset="none",
        allowed_models=[],
        rate_limit_rpm=30,
    )
    spend = KeySpend.objects.get(api_key=key)
    assert (key.name, key.limit_micro_usd, key.rate_limit_rpm, spend.used_micro_usd) == (
        "svc v2",
        2_000,
        30,
        700,
    )
    assert spend.reserved_micro_usd == 100  # held amounts belong to requests in flight

    api_key_update(
        api_key=key,
        acting_user=owner,
        name="svc v2",
        limit_micro_usd=2_000,
        limit_reset="monthly",
        allowed_models=[],
        rate_limit_rpm=None,
    )
    spend.refresh_from_db()
    assert (key.limit_reset, spend.used_micro_usd, spend.reserved_micro_usd) == ("monthly", 0, 100)

    stranger = make_user()
    membership_add(workspace=workspace, user=stranger, acting_user=owner)
    with pytest.raises(NotPermitted):
        api_key_update(
            api_key=key,
            acting_user=stranger,
            name="mine now",
            limit_micro_usd=None,
            limit_reset="none",
            allowed_models=[],
            rate_limit_rpm=None,
        )
    with pytest.raises(InvalidField, match="limit_micro_usd"):
        api_key_update(
            api_key=key,
            acting_user=owner,
            name="x",
            limit_micro_usd=-5,
            limit_reset="none",
            allowed_models=[],
            rate_limit_rpm=None,
        )
