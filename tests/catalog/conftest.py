import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

SHIPPED = Path(settings.BASE_DIR) / "providers.yaml"
_SHIPPED_DATA = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


@pytest.fixture
def shipped_path() -> Path:
    return SHIPPED


@pytest.fixture
def shipped_data() -> dict[str, Any]:
    """A fresh, mutable copy of the shipped providers.yaml."""
    return copy.deepcopy(_SHIPPED_DATA)


@pytest.fixture
def write_catalog(tmp_path: Path) -> Callable[[dict[str, Any] | str], Path]:
    """Write a catalog (a dict to dump, or raw text) to tmp_path/providers.yaml and return its path."""

    def write(content: dict[str, Any] | str) -> Path:
        path = tmp_path / "providers.yaml"
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def workspace():
    """A workspace to record traffic in (the catalog pages' live figures)."""
    from tests.factories import make_workspace

    return make_workspace()
