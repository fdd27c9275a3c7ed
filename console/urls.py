from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from console.views import auth, dashboard, keys, payments, playground, team, usage

app_name = "console"
urlpatterns = [
    path("", auth.home, name="home"),
    path("signup/", auth.signup, name="signup"),
    path("login/", auth.ConsoleLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/reset/",
        auth_views.PasswordResetView.as_view(
            template_name="console/password_reset.html",
            email_template_name="console/email/password_reset.txt",
            subject_template_name="console/email/password_reset_subject.txt",
            success_url=reverse_lazy("console:password_reset_done"),
        ),
        name="password_reset",
    ),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="console/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="console/password_reset_confirm.html",
            success_url=reverse_lazy("console:password_reset_complete"),
        ),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="console/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(
            template_name="console/password_change.html",
            success_url=reverse_lazy("console:password_change_done"),
        ),
        name="password_change",
    ),
    path(
        "account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="console/password_change_done.html"),
        name="password_change_done",
    ),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("billing/", dashboard.billing, name="billing"),
    path("billing/add/", payments.credits_add, name="credits_add"),
    path("billing/pay/", payments.credits_pay, name="credits_pay"),
    path("billing/auto-top-up/", payments.auto_top_up_settings, name="auto_top_up"),
    path("billing/payments/", payments.payments, name="payments"),
    path(
        "billing/payments/<str:payment_intent_id>/refresh/", payments.credits_refresh, name="credits_refresh"
    ),
    path(
        "billing/payments/<str:payment_intent_id>/receipt/", payments.payment_receipt, name="payment_receipt"
    ),
    path("stripe/webhook/", payments.stripe_webhook, name="stripe_webhook"),
    path("playground/", playground.playground, name="playground"),
    path("playground/key/", playground.playground_key, name="playground_key"),
    path("usage/", usage.usage, name="usage"),
    path("usage/export.csv", usage.usage_csv, name="usage_csv"),
    path("keys/", keys.keys, name="keys"),
    path("keys/<int:key_id>/edit/", keys.key_edit, name="key_edit"),
    path("keys/<int:key_id>/revoke/", keys.key_revoke, name="key_revoke"),
    path("workspaces/new/", dashboard.workspace_new, name="workspace_new"),
    path("workspaces/switch/", dashboard.workspace_switch, name="workspace_switch"),
    path("members/", team.members, name="members"),
    path("members/<int:membership_id>/role/", team.member_role, name="member_role"),
    path("members/<int:membership_id>/remove/", team.member_remove, name="member_remove"),
    path(
        "members/invitations/<int:invitation_id>/withdraw/",
        team.invitation_withdraw,
        name="invitation_withdraw",
    ),
    path("invitations/<str:token>/", team.invitation, name="invitation"),
    path("verify-email/resend/", auth.verify_email_resend, name="verify_email_resend"),
    path("verify-email/<str:uidb64>/<str:token>/", auth.verify_email, name="verify_email"),
]
