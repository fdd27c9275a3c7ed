"""Catalog vocabularies shared by the models, the providers.yaml schema and the public API."""

from django.db.models import TextChoices


class ProviderKind(TextChoices):
    """The upstream dialect; the gateway keys its adapter registry on it."""

    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"
    CEREBRAS = "cerebras", "Cerebras"
    FIREWORKS = "fireworks", "Fireworks"
    BASETEN = "baseten", "Baseten"
    LLAMACPP = "llamacpp", "llama.cpp / Jan"
    ANTHROPIC = "anthropic", "Anthropic"
    MOCK = "mock", "Mock (offline sandbox)"


# Kinds that may run without a base URL / without an API key.
KINDS_WITHOUT_BASE_URL = (ProviderKind.MOCK.value,)
KINDS_WITHOUT_CREDENTIALS = (ProviderKind.LLAMACPP.value, ProviderKind.MOCK.value)

# The PublicModel enums of the public API (specs/004).
FEATURES = ("tools", "vision", "json_mode", "reasoning", "streaming", "prompt_caching")
BENCHMARK_UNITS = ("%", "elo", "pass@1")
BENCHMARK_TIERS = ("primary", "extra")
