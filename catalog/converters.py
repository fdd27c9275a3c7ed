"""The model page's URL part: a model slug with its slash (`deepseek/deepseek-v4-pro`), as providers.yaml
allows it."""

from catalog.schema import MODEL_SLUG


class ModelSlugConverter:
    regex = MODEL_SLUG

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
