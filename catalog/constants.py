"""Catalog vocabularies shared by the models, the providers.yaml schema and the public API.

Provider kinds are not here: the gateway registers them (catalog/dialects.py)."""

# The PublicModel enums of the public API (specs/004).
FEATURES = ("tools", "vision", "json_mode", "reasoning", "streaming", "prompt_caching")
BENCHMARK_UNITS = ("%", "elo", "pass@1")
BENCHMARK_TIERS = ("primary", "extra")

# What a model does: answer (every ingress format) or embed (POST /api/v1/embeddings). An extension.
MODEL_KINDS = ("chat", "embedding")
