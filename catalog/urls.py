from django.urls import path, register_converter

from catalog import views
from catalog.converters import ModelSlugConverter

register_converter(ModelSlugConverter, "model_slug")

app_name = "catalog"
urlpatterns = [
    path("", views.model_list, name="models"),
    path("<model_slug:slug>/", views.model_detail, name="model"),
]
