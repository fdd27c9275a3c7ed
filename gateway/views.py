"""The dashboard's activity pages: the workspace's generation records (gateway/activity.py), in the
console's signed-in frame."""

import json
from urllib.parse import urlencode

from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render

from catalog.models import Provider
from catalog.selectors import models_active
from console.models import ApiKey
from console.views.decorators import WorkspaceRequest, workspace_required
from gateway.activity import activity_filters_parse, activity_page, activity_record, error_meaning
from gateway.ingress.registry import recorded_format_names
from gateway.metering.records import generation_data
from gateway.models import GenerationStatus, Source


@workspace_required
def activity(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    filters, errors = activity_filters_parse(request.GET)
    query = filters.as_query()
    page = activity_page(workspace_id=workspace.pk, filters=filters, cursor=request.GET.get("cursor", ""))
    context = {
        "page": page,
        "filters": filters,
        "filter_errors": errors,
        "filtered": bool(query),
        "newest_query": urlencode(query),
        "next_query": urlencode({**query, "cursor": page.next_cursor}) if page.next_cursor else "",
        "first_page": not request.GET.get("cursor"),
        "keys": ApiKey.objects.filter(workspace=workspace).only("pk", "name", "prefix", "revoked_at"),
        "models": [model.slug for model in models_active()],
        "providers": list(Provider.objects.order_by("slug").values_list("slug", flat=True)),
        "formats": recorded_format_names(),
        "sources": Source.choices,
        "statuses": GenerationStatus.choices,
    }
    return render(request, "gateway/activity.html", context)


@workspace_required
def activity_detail(request: WorkspaceRequest, request_id: str) -> HttpResponse:
    record = activity_record(workspace_id=request.workspace.pk, request_id=request_id)
    if record is None:
        raise Http404("No generation with this id in your workspace.")
    context = {
        "record": record,
        # As the API's JSON has them: strings bare, anything else as JSON (true, null, 12, {...}).
        "fields": [
            (name, value if isinstance(value, str) else json.dumps(value))
            for name, value in generation_data(record).items()
        ],
        "error_meaning": error_meaning(record.error_code),
    }
    return render(request, "gateway/activity_detail.html", context)


@workspace_required
def activity_record_json(request: WorkspaceRequest, request_id: str) -> JsonResponse:
    """/api/v1/generation's `data` for a signed-in member (the playground shows its answers' figures)."""
    record = activity_record(workspace_id=request.workspace.pk, request_id=request_id)
    if record is None:  # not written yet (the Redis meter's writer is moments behind), or another workspace's
        return JsonResponse({"error": "No generation with this id in your workspace (yet)."}, status=404)
    return JsonResponse({"data": generation_data(record)})
