"""Sign-up, log in and log out."""

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


def home(request: HttpRequest) -> HttpResponse:
    """The front page: the sign-up form for visitors, the dashboard for signed-in users."""
    if request.user.is_authenticated:
        return redirect("console:dashboard")
    return signup(request)


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("console:dashboard")
    form = SignupForm(request.POST or None)
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
    template_name = "console/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True
