"""Upstream adapters, one module per dialect, registered by the `kind` used in providers.yaml."""
