from django.urls import path

from console.api.internal import PlaygroundKeysView
from console.api.views import CreditsView, KeyView

urlpatterns = [
    path("credits", CreditsView.as_view(), name="api-credits"),
    path("key", KeyView.as_view(), name="api-key"),
    path("playground-keys", PlaygroundKeysView.as_view(), name="api-playground-keys"),
]
