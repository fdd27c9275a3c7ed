"""Sign-up: a user, their personal workspace, and the sign-up credit grant, all or nothing."""

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from billing.services import credits_grant
from console.errors import EmailTaken
from console.models import User, Workspace
from console.services.workspaces import workspace_create


@transaction.atomic
def user_signup(*, email: str, password: str, name: str = "") -> tuple[User, Workspace]:
    email = User.objects.normalize_email(email.strip()).lower()
    if User.objects.filter(email__iexact=email).exists():
        raise EmailTaken("an account with this e-mail already exists")
    user = User(email=email, name=name.strip())
    validate_password(password, user)
    user.set_password(password)
    user.save()
    label = user.name or email.split("@")[0]
    workspace = workspace_create(owner=user, name=f"{label}'s workspace", is_personal=True)
    if settings.SIGNUP_GRANT_MICRO_USD > 0:
        credits_grant(
            workspace_id=workspace.id,
            amount_micro_usd=settings.SIGNUP_GRANT_MICRO_USD,
            reason="Sign-up grant",
            reference=f"signup:{workspace.id}",
        )
    return user, workspace
