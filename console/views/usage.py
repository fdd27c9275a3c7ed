"""The Usage page: spend, tokens and requests per hour or day, by model or by key, from the usage rollups
(billing/usage.py), as inline SVG charts and a table; and the same figures as CSV."""

import csv
import uuid
from collections.abc import Callable
from datetime import datetime

from django.http import HttpResponse
from django.shortcuts import render

from billing.models import USAGE_SUMS
from billing.money import micro_to_usd
from billing.usage import USAGE_RANGES, Breakdown, UsageReport, usage_report
from console.charts import StackedBars, colour_of, stacked_bars
from console.models import ApiKey
from console.templatetags.money import usd
from console.views.decorators import WorkspaceRequest, workspace_required

DEFAULT_RANGE, DEFAULT_BY = "30d", "model"
KEYLESS_LABEL = "Dashboard chat / playground"
OTHER_LABEL = "Other"


def _choices(request: WorkspaceRequest) -> tuple[str, Breakdown]:
    """The window and breakdown asked for; anything else falls back to the defaults."""
    range_name = request.GET.get("range", DEFAULT_RANGE)
    by = request.GET.get("by", DEFAULT_BY)
    return (
        range_name if range_name in USAGE_RANGES else DEFAULT_RANGE,
        "key" if by == "key" else "model",
    )


def _labels(report: UsageReport, workspace_id: uuid.UUID) -> dict[str | None, str]:
    """What each series is called on the page: the model slug, or the key's name."""
    labels: dict[str | None, str] = {None: OTHER_LABEL}
    if report.by == "model":
        labels.update({s.key: s.key or "unknown" for s in report.series})
        return labels
    ids = {int(s.key) for s in report.series if s.key}
    names = dict(ApiKey.objects.filter(workspace_id=workspace_id, pk__in=ids).values_list("pk", "name"))
    for s in report.series:
        if s.key == "":
            labels[s.key] = KEYLESS_LABEL
        elif s.key is not None:
            labels[s.key] = names.get(int(s.key), f"deleted key #{s.key}")
    return labels


def _bucket_label(report: UsageReport) -> Callable[[datetime], str]:
    if report.period == "hour":
        return lambda start: f"{start:%b %d %H:00} UTC"
    return lambda start: f"{start:%b %d}"


def _charts(report: UsageReport, labels: dict[str | None, str]) -> list[StackedBars]:
    def lines(figure: str) -> list[tuple[str, str, list[int]]]:
        return [
            (labels[s.key], colour_of(i, is_other=s.key is None), [getattr(b, figure) for b in s.buckets])
            for i, s in enumerate(report.series)
        ]

    bucket = _bucket_label(report)
    charts = (
        ("Spend", "cost_micro_usd", usd),
        ("Tokens", "tokens", lambda n: f"{n:,}"),
        ("Requests", "requests", lambda n: f"{n:,}"),
    )
    return [
        stacked_bars(
            title=title,
            bucket_starts=report.bucket_starts,
            series=lines(figure),
            format_value=fmt,
            format_bucket=bucket,
        )
        for title, figure, fmt in charts
    ]


@workspace_required
def usage(request: WorkspaceRequest) -> HttpResponse:
    range_name, by = _choices(request)
    report = usage_report(workspace_id=request.workspace.pk, range_name=range_name, by=by)
    labels = _labels(report, request.workspace.pk)
    legend = [(labels[s.key], colour_of(i, is_other=s.key is None), s) for i, s in enumerate(report.series)]
    context = {
        "report": report,
        "range_name": range_name,
        "by": by,
        "ranges": [("48h", "Last 48 hours"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days")],
        "charts": _charts(report, labels) if report.series else [],
        "legend": legend,
    }
    return render(request, "console/usage.html", context)


@workspace_required
def usage_csv(request: WorkspaceRequest) -> HttpResponse:
    """Every bucket x series of the window that had requests, unfolded, costs exact."""
    range_name, by = _choices(request)
    report = usage_report(workspace_id=request.workspace.pk, range_name=range_name, by=by, fold=False)
    labels = _labels(report, request.workspace.pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"usage-{request.workspace.slug}-{range_name}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    names = ["model"] if by == "model" else ["api_key_id", "api_key_name"]
    writer.writerow(["bucket_start", *names, *USAGE_SUMS, "cost_usd"])
    for i, start in enumerate(report.bucket_starts):
        for series in report.series:
            figures = series.buckets[i]
            if not figures.requests:
                continue
            name = [labels[series.key]] if by == "model" else [series.key or "", labels[series.key]]
            sums = [getattr(figures, field) for field in USAGE_SUMS]
            writer.writerow([start.isoformat(), *name, *sums, f"{micro_to_usd(figures.cost_micro_usd):.6f}"])
    return response
