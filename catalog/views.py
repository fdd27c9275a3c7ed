"""The public catalog pages: the model list (search, filters, sort) and a model's page. No login needed."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from catalog.browse import CONTEXT_CHOICES, FEATURE_LABELS, SORTS, ModelQuery, browse_models
from catalog.constants import FEATURES
from catalog.public import public_model
from catalog.selectors import model_figures_get, model_get, models_active, weekly_token_volumes
from catalog.services import FIGURE_DAYS
from catalog.snippets import request_snippets


def model_list(request: HttpRequest) -> HttpResponse:
    query = ModelQuery.from_params(request.GET)
    volumes = weekly_token_volumes()
    models = list(models_active())
    shown = browse_models(models, query, weekly_volumes=volumes)
    creators = sorted({model.creator.slug: model.creator for model in models}.values(), key=lambda c: c.name)
    context = {
        "query": query,
        "models": [public_model(model, weekly_token_volume=volumes.get(model.slug, 0)) for model in shown],
        "total": len(models),
        "creators": creators,
        "features": [(code, FEATURE_LABELS[code]) for code in FEATURES],
        "sorts": SORTS.items(),
        "context_choices": CONTEXT_CHOICES,
    }
    return render(request, "catalog/model_list.html", context)


def model_detail(request: HttpRequest, slug: str) -> HttpResponse:
    model = model_get(slug)
    if model is None:
        raise Http404("No active model has this slug.")
    figures = model_figures_get(slug=slug, days=FIGURE_DAYS)
    context = {
        "model": public_model(model, weekly_token_volume=figures.weekly_tokens),
        "routes": [route.provider for route in model.routes.all()],
        "performance": figures,
        "daily_volume": [{"date": day.isoformat(), "tokens": tokens} for day, tokens in figures.daily_tokens],
        "volume_total": sum(tokens for _, tokens in figures.daily_tokens),
        "chart_days": FIGURE_DAYS,
        "snippets": request_snippets(
            slug=slug,
            site_url=request.build_absolute_uri("/"),
            max_output_tokens=model.max_output_tokens,
            kind=model.kind,
        ),
    }
    return render(request, "catalog/model_detail.html", context)
