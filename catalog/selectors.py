"""Catalog reads shared by several apps."""

from django.db.models import QuerySet

from catalog.models import Model


def models_active() -> QuerySet[Model]:
    """Active models in catalog order, with creator, routes and their providers loaded."""
    return (
        Model.objects.filter(is_active=True)
        .select_related("creator")
        .prefetch_related("routes__provider")
        .order_by("position", "slug")
    )


def model_get(slug: str) -> Model | None:
    """The active model with this slug, or None (inactive models are not served)."""
    return models_active().filter(slug=slug).first()


def model_slugs() -> set[str]:
    """Slugs of active models (e.g. to validate an API key's model allowlist)."""
    return set(Model.objects.filter(is_active=True).values_list("slug", flat=True))
