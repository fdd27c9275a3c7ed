"""Sign-up (and the verification of its e-mail address), log in and log out."""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from billing.money import format_usd
from console.errors import EmailTaken
from console.forms import LoginForm, SignupForm
from console.selectors import SESSION_WORKSPACE_KEY
from console.services.accounts import (
    email_verify,
    user_signup,
    verification_email_send,
    verification_user,
)
from console.services.throttle import (
    FAILED_LOGINS,
    SIGNUPS,
    VERIFICATION_EMAILS,
    throttle_clear,
    throttle_count,
    throttled,
)
from console.views.decorators import SignedInRequest


def home(request: HttpRequest) -> HttpResponse:
    """The front page: the sign-up form for visitors, the dashboard for signed-in users."""
    if request.user.is_authenticated:
        return redirect("console:dashboard")
    return signup(request)


def _safe_next(request: HttpRequest) -> str:
    """Where to go after signing up: `next` if it is a page of this site (an invitation), else ""."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else ""


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("console:dashboard")
    form = SignupForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    after = _safe_next(request)
    context = {"form": form, "next": after}
    client = [request.META.get("REMOTE_ADDR", "")]
    if request.method == "POST" and throttled(limit=SIGNUPS, who=client):
        form.is_valid()
        form.add_error(None, "Too many sign-ups from your network; try again in an hour.")
        return render(request, "console/signup.html", context, status=429)
    if request.method == "POST" and form.is_valid():
        try:
            user, workspace = user_signup(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                name=form.cleaned_data["name"],
                site_url=request.build_absolute_uri("/"),
            )
        except EmailTaken as exc:
            form.add_error("email", str(exc))
        except ValidationError as exc:
            form.add_error("password", exc)
        else:
            throttle_count(limit=SIGNUPS, who=client)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[SESSION_WORKSPACE_KEY] = str(workspace.pk)
            messages.success(request, _welcome(workspace.name, user.email))
            return redirect(after or "console:keys")
    return render(request, "console/signup.html", context)


def _welcome(workspace_name: str, email: str) -> str:
    welcome = f"Welcome! {workspace_name} is ready."
    if settings.SIGNUP_GRANT_MICRO_USD > 0:
        grant = format_usd(settings.SIGNUP_GRANT_MICRO_USD)
        return f"{welcome} Confirm your address with the link sent to {email} to receive {grant} of credits."
    return f"{welcome} Confirm your address with the link sent to {email}."


def verify_email(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The link in the verification e-mail: verifies the address, and so credits the sign-up grant."""
    user = verification_user(uidb64=uidb64, token=token)
    if user is None:
        if request.user.is_authenticated and request.user.email_verified_at is not None:
            messages.info(request, "Your e-mail address is verified already.")
            return redirect("console:dashboard")
        context = {"problem": "This verification link is not valid any more: it was used, or it expired."}
        return render(request, "console/verify_email.html", context, status=410)
    email_verify(user=user)
    grant = format_usd(settings.SIGNUP_GRANT_MICRO_USD) if settings.SIGNUP_GRANT_MICRO_USD > 0 else ""
    text = f"E-mail address verified: {grant} of credits added." if grant else "E-mail address verified."
    messages.success(request, text)
    return redirect("console:dashboard" if request.user.is_authenticated else "console:login")


@login_required
@require_POST
def verify_email_resend(request: SignedInRequest) -> HttpResponse:
    who = [str(request.user.pk)]
    if request.user.email_verified_at is not None:
        messages.info(request, "Your e-mail address is verified already.")
    elif throttled(limit=VERIFICATION_EMAILS, who=who):
        messages.error(request, "We sent several links already; check your spam folder, or try again later.")
    else:
        throttle_count(limit=VERIFICATION_EMAILS, who=who)
        verification_email_send(user=request.user, site_url=request.build_absolute_uri("/"))
        messages.success(request, f"A new link is on its way to {request.user.email}.")
    return redirect(_safe_next(request) or "console:dashboard")


class ConsoleLoginView(LoginView):
    """Log-in, with failed attempts counted per address and per e-mail: past the limit, even the right
    password is refused until the window ends (a guesser learns nothing from it)."""

    template_name = "console/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def _who(self) -> list[str]:
        return [self.request.META.get("REMOTE_ADDR", ""), self.request.POST.get("username", "").strip()]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if throttled(limit=FAILED_LOGINS, who=self._who()):
            form = self.get_form()
            form.is_bound = False  # shown again empty, with the reason
            context = self.get_context_data(form=form, throttled=True)
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: Any) -> HttpResponse:
        throttle_count(limit=FAILED_LOGINS, who=self._who())
        return super().form_invalid(form)

    def form_valid(self, form: Any) -> HttpResponse:
        throttle_clear(limit=FAILED_LOGINS, who=self._who()[1:])  # the address's count stands
        return super().form_valid(form)
