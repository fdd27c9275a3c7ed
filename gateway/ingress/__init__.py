"""Ingress formats: each parses its own request into the canonical one and renders events back."""
