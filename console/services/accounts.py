"""Sign-up and e-mail verification: a user and their personal workspace at sign-up; the sign-up credit grant
only once the address is verified through a one-time link (so unverified addresses farm nothing)."""

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from billing.money import format_usd
from billing.services import credits_grant
from console.errors import EmailTaken
from console.models import Membership, Role, User, Workspace
from console.services.workspaces import workspace_create


class _VerificationTokens(PasswordResetTokenGenerator):
    """One-time: the token hashes the verification time, so it stops working once used; it expires with
    PASSWORD_RESET_TIMEOUT like a reset link."""

    key_salt = "console.services.accounts.email_verification"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        return f"{user.pk}{user.email}{user.email_verified_at}{timestamp}"


verification_tokens = _VerificationTokens()


@transaction.atomic
def user_signup(*, email: str, password: str, name: str = "", site_url: str = "") -> tuple[User, Workspace]:
    """A user and their personal workspace; the verification e-mail goes once the transaction commits."""
    email = User.objects.normalize_email(email.strip()).lower()
    if User.objects.filter(email__iexact=email).exists():
        raise EmailTaken("an account with this e-mail already exists")
    user = User(email=email, name=name.strip())
    validate_password(password, user)
    user.set_password(password)
    user.save()
    label = user.name or email.split("@")[0]
    workspace = workspace_create(owner=user, name=f"{label}'s workspace", is_personal=True)
    transaction.on_commit(lambda: verification_email_send(user=user, site_url=site_url))
    return user, workspace


def verification_link(*, user: User, site_url: str = "") -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    path = reverse("console:verify_email", args=[uid, verification_tokens.make_token(user)])
    return (site_url or settings.SITE_URL).rstrip("/") + path


def verification_email_send(*, user: User, site_url: str = "") -> None:
    context = {
        "link": verification_link(user=user, site_url=site_url),
        "grant": format_usd(settings.SIGNUP_GRANT_MICRO_USD) if settings.SIGNUP_GRANT_MICRO_USD > 0 else "",
    }
    body = render_to_string("console/email/verify_email.txt", context)
    send_mail("Verify your e-mail address for HyperInfer", body, None, [user.email])


def verification_user(*, uidb64: str, token: str) -> User | None:
    """The user a verification link is for, if the link is still good."""
    try:
        user = User.objects.filter(pk=int(force_str(urlsafe_base64_decode(uidb64)))).first()
    except (ValueError, OverflowError):
        return None
    if user is None or not verification_tokens.check_token(user, token):
        return None
    return user


def personal_workspace(*, user: User) -> Workspace | None:
    owned = Membership.objects.filter(user=user, role=Role.OWNER, workspace__is_personal=True)
    membership = owned.select_related("workspace").order_by("created_at").first()
    return membership.workspace if membership else None


@transaction.atomic
def email_verify(*, user: User) -> bool:
    """Mark the address verified and credit the sign-up grant to the personal workspace, once: of two
    concurrent clicks, the second finds the row updated already (the UPDATE waits on the first's row lock),
    and the grant's ledger reference is unique besides. Returns whether this call verified it."""
    now = timezone.now()
    if not User.objects.filter(pk=user.pk, email_verified_at__isnull=True).update(email_verified_at=now):
        return False
    user.email_verified_at = now
    workspace = personal_workspace(user=user)
    if workspace is not None and settings.SIGNUP_GRANT_MICRO_USD > 0:
        credits_grant(
            workspace_id=workspace.id,
            amount_micro_usd=settings.SIGNUP_GRANT_MICRO_USD,
            reason="Sign-up grant",
            reference=f"signup:{workspace.id}",
        )
    return True
