from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "HyperInfer operations"
admin.site.site_title = "HyperInfer admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("console.api.urls")),
    path("api/v1/", include("catalog.api.urls")),
    path("models/", include("catalog.urls")),
    path("", include("console.urls")),
]
