from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from billing.admin import ActionForm, KeySpendInline, adjust_credits_for, render_action_form
from billing.money import format_usd
from billing.services import account_open
from console.models import ApiKey, Invitation, Membership, PlaygroundKey, User, Workspace
from console.services.keys import api_key_revoke
from console.services.workspaces import workspace_lock, workspace_unlock


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = (
        "email",
        "name",
        "email_verified_at",
        "is_staff",
        "is_active",
        "date_joined",
        "last_login",
    )
    list_filter = ("is_staff", "is_superuser", "is_active", ("email_verified_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "name")
    readonly_fields = ("email_verified_at",)  # set by the verification link (it credits the grant)
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name", "email_verified_at")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)


class LockForm(ActionForm):
    title = "Lock workspaces"
    reason = forms.CharField(
        max_length=300, help_text="Shown to operators; the API answers workspace_locked."
    )


@admin.action(description="Lock (refuse API traffic with workspace_locked)")
def lock_workspaces(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Workspace]
) -> HttpResponse | None:
    if "apply" in request.POST:
        form = LockForm(request.POST)
        if form.is_valid():
            for workspace in queryset:
                workspace_lock(workspace=workspace, reason=form.cleaned_data["reason"])
            modeladmin.message_user(request, f"Locked {queryset.count()} workspace(s).", messages.SUCCESS)
            return None
    else:
        form = LockForm()
    return render_action_form(
        modeladmin,
        request,
        form=form,
        items=[f"{workspace.name} ({workspace.slug})" for workspace in queryset],
        action_name="lock_workspaces",
        intro="Locked workspaces keep their data and balance; their API requests get workspace_locked.",
        submit_label="Lock",
    )


@admin.action(description="Unlock")
def unlock_workspaces(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Workspace]
) -> None:
    for workspace in queryset:
        workspace_unlock(workspace=workspace)
    modeladmin.message_user(request, f"Unlocked {queryset.count()} workspace(s).", messages.SUCCESS)


@admin.action(description="Adjust credits (through the ledger, with a reason)")
def adjust_workspace_credits(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Workspace]
) -> HttpResponse | None:
    return adjust_credits_for(modeladmin, request, list(queryset), "adjust_workspace_credits")


class LockedFilter(admin.SimpleListFilter):
    title = "locked"
    parameter_name = "locked"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[tuple[str, str]]:
        return (("yes", "Locked"), ("no", "Not locked"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> QuerySet[Workspace]:
        if self.value() == "yes":
            return queryset.filter(locked_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(locked_at__isnull=True)
        return queryset


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_personal", "balance", "locked_at", "created_at")
    list_filter = ("is_personal", LockedFilter, "created_at")
    search_fields = ("name", "slug", "id", "memberships__user__email")
    readonly_fields = ("id", "created_at", "locked_at", "locked_reason", "balance")
    inlines = [MembershipInline]
    actions = [adjust_workspace_credits, lock_workspaces, unlock_workspaces]
    list_select_related = ("credit_account",)

    def save_model(self, request: HttpRequest, obj: Workspace, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        account_open(workspace_id=obj.pk)

    @admin.display(description="Balance")
    def balance(self, obj: Workspace) -> str:
        account = getattr(obj, "credit_account", None)
        return format_usd(account.balance_micro_usd, 6) if account else "—"


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("workspace", "user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("workspace__slug", "workspace__name", "user__email")
    autocomplete_fields = ("workspace", "user")


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[tuple[str, str]]:
        return (("active", "Active"), ("revoked", "Revoked"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.action(description="Revoke selected keys")
def revoke_keys(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
    for key in queryset:
        api_key_revoke(api_key=key, acting_user=None)
    modeladmin.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "workspace",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "limit_micro_usd",
        "limit_reset",
        "lifetime_spend",
    )
    list_filter = (KeyStateFilter, "limit_reset", "created_at")
    search_fields = ("name", "prefix", "workspace__slug", "workspace__name")
    list_select_related = ("workspace", "spend")
    inlines = [KeySpendInline]
    # The secret itself is never stored; the hash is not worth showing.
    exclude = ("secret_hash",)
    readonly_fields = (
        "prefix",
        "workspace",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = [revoke_keys]

    @admin.display(description="Lifetime spend", ordering="spend__lifetime_micro_usd")
    def lifetime_spend(self, obj: ApiKey) -> str:
        spend = getattr(obj, "spend", None)
        return format_usd(spend.lifetime_micro_usd if spend else 0, 6)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return (
            False  # keys are issued by the dashboard or `manage.py createapikey`, which show the secret once
        )


@admin.register(PlaygroundKey)
class PlaygroundKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "workspace", "user", "source", "created_at", "expires_at", "used_at")
    list_filter = ("source", "created_at")
    search_fields = ("prefix", "workspace__slug", "user__email")
    exclude = ("secret_hash",)
    readonly_fields = ("prefix", "workspace", "user", "source", "created_at", "expires_at", "used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = (
        "email",
        "workspace",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    )
    list_filter = ("role", "created_at", ("accepted_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "workspace__slug", "workspace__name", "invited_by__email")
    exclude = ("token_hash",)
    readonly_fields = (
        "workspace", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "accepted_by",
        "revoked_at",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invitations are sent from the members page, which e-mails the link
