"""Sign-up, log in and log out."""

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from billing.money import format_usd
from console.errors import EmailTaken
from console.forms import LoginForm, SignupForm
from console.selectors import SESSION_WORKSPACE_KEY
from console.services.accounts import user_signup
from console.services.throttle import FAILED_LOGINS, SIGNUPS, throttle_clear, throttle_count, throttled


def home(request: HttpRequest) -> HttpResponse:
    """The front page: the sign-up form for visitors, the dashboard for signed-in users."""
    if request.user.is_authenticated:
        return redirect("console:dashboard")
    return signup(request)


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("console:dashboard")
    form = SignupForm(request.POST or None)
    client = [request.META.get("REMOTE_ADDR", "")]
    if request.method == "POST" and throttled(limit=SIGNUPS, who=client):
        form.is_valid()
        form.add_error(None, "Too many sign-ups from your network; try again in an hour.")
        return render(request, "console/signup.html", {"form": form}, status=429)
    if request.method == "POST" and form.is_valid():
        try:
            user, workspace = user_signup(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                name=form.cleaned_data["name"],
            )
        except EmailTaken as exc:
            form.add_error("email", str(exc))
        except ValidationError as exc:
            form.add_error("password", exc)
        else:
            throttle_count(limit=SIGNUPS, who=client)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            request.session[SESSION_WORKSPACE_KEY] = str(workspace.pk)
            grant = workspace.ledger_entries.filter(kind="grant").first()
            welcome = f"Welcome! {workspace.name} is ready"
            messages.success(
                request,
                f"{welcome} with {format_usd(grant.amount_micro_usd)} of credits."
                if grant
                else welcome + ".",
            )
            return redirect("console:keys")
    return render(request, "console/signup.html", {"form": form})


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
