from django.contrib.auth.views import LogoutView
from django.urls import path

from console.views import auth, dashboard, keys

app_name = "console"
urlpatterns = [
    path("", auth.home, name="home"),
    path("signup/", auth.signup, name="signup"),
    path("login/", auth.ConsoleLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("billing/", dashboard.billing, name="billing"),
    path("keys/", keys.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", keys.key_revoke, name="key_revoke"),
    path("workspaces/new/", dashboard.workspace_new, name="workspace_new"),
    path("workspaces/switch/", dashboard.workspace_switch, name="workspace_switch"),
    path("members/", dashboard.members, name="members"),
    path("members/<int:membership_id>/remove/", dashboard.member_remove, name="member_remove"),
]
