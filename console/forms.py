from datetime import datetime, timedelta
from typing import Any, cast

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from billing.money import usd_to_micro
from console.models import LimitReset, Role


class SignupForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    name = forms.CharField(max_length=150, required=False, help_text="Optional: how we greet you.")
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 10 characters.",
    )


class LoginForm(AuthenticationForm):
    username = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True}))


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=100)


EXPIRY_CHOICES = [
    ("", "Never"),
    ("7", "In 7 days"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
]


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. production backend"})
    )
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, empty_value=None, required=False, label="Expires"
    )
    limit_usd = forms.DecimalField(
        required=False,
        min_value=0,
        decimal_places=6,
        max_digits=14,
        label="Credit limit (USD)",
        help_text="Optional; blank for no limit.",
    )
    limit_reset = forms.ChoiceField(choices=LimitReset.choices, initial=LimitReset.NONE, label="Limit resets")
    allowed_models = forms.MultipleChoiceField(
        required=False,
        choices=(),
        help_text="None selected allows every model.",
        widget=forms.SelectMultiple(attrs={"size": 5}),
    )
    rate_limit_rpm = forms.IntegerField(
        required=False,
        min_value=1,
        label="Requests per minute",
        help_text="Optional; blank for no per-key limit.",
    )

    def __init__(self, *args: Any, model_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.MultipleChoiceField, self.fields["allowed_models"]).choices = model_choices

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None

    def key_settings(self) -> dict[str, Any]:
        """The cleaned limits as the key services take them (USD → micro-USD)."""
        limit = self.cleaned_data["limit_usd"]
        return {
            "name": self.cleaned_data["name"],
            "limit_micro_usd": usd_to_micro(limit) if limit is not None else None,
            "limit_reset": self.cleaned_data["limit_reset"],
            "allowed_models": self.cleaned_data["allowed_models"],
            "rate_limit_rpm": self.cleaned_data["rate_limit_rpm"],
        }


class ApiKeyEditForm(ApiKeyForm):
    """The same settings as creation, less the expiry (a key's lifetime is fixed when it is issued)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["expires_in_days"]
        self.fields["limit_reset"].help_text = "Changing it starts a new period: the limit's spend resets."


class InviteForm(forms.Form):
    email = forms.EmailField(help_text="They get a one-time link; no account is needed yet.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.ChoiceField, self.fields["role"])
        field.choices = [(value, label) for value, label in Role.choices if value in roles]
