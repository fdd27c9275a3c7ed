from django.contrib import admin
from django.urls import include, path, re_path

from core.drf import api_not_found

admin.site.site_header = "HyperInfer operations"
admin.site.site_title = "HyperInfer admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("console.api.urls")),
    path("api/v1/", include("catalog.api.urls")),
    path("models/", include("catalog.urls")),
    path("", include("gateway.urls")),
    re_path(r"^api/(?P<unmatched>[\s\S]*)$", api_not_found),  # any character, a newline too
    path("", include("console.urls")),
]
