"""The gateway's dashboard pages (its API is its own ASGI app, gateway/app.py)."""

from django.urls import path

from gateway import views

app_name = "gateway"
urlpatterns = [
    path("activity/", views.activity, name="activity"),
    path("activity/<str:request_id>/", views.activity_detail, name="activity_detail"),
    path("activity/<str:request_id>/record.json", views.activity_record_json, name="activity_record"),
]
