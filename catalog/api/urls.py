from django.urls import path

from catalog.api.views import ModelsView, ModelView

urlpatterns = [
    path("models", ModelsView.as_view(), name="api-models"),
    path("models/<path:slug>", ModelView.as_view(), name="api-model"),
]
