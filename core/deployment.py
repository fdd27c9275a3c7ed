"""What this deployment offers that depends on its settings, asked by several apps."""

from django.conf import settings


def image_generation_configured() -> bool:
    """Whether the `image` server tool has a backend (GET /api/v1/models `meta`, the gateway's tools)."""
    return bool(settings.IMAGE_GENERATION_BACKEND)
