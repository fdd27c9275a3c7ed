"""docs/new-dialect.md, followed step by step for a dummy dialect: its module is written into
gateway/upstreams/, the processes "restart", a providers.yaml entry names it, and a request goes through the
gateway to a loopback fake — with no other file touched. Everything the test adds is removed after it."""

import importlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from django.apps import apps
from django.conf import settings

import gateway.upstreams
from catalog.dialects import dialect_get, dialect_unregister
from catalog.loader import catalog_load
from gateway.catalog_cache import catalog_cache
from gateway.upstreams.registry import adapter_kinds, unregister
from tests.fakes.openai_dialects import Scenario, openai_fake
from tests.gateway.conftest import settled_generation

KIND = "recipe_dummy"
MODULE = Path(gateway.upstreams.__file__).parent / f"{KIND}.py"
# Step 1: an OpenAI-family dialect that differs in two ways: where the token limit goes, and no API key.
SOURCE = f'''"""A dummy dialect written by tests/gateway/test_new_dialect_recipe.py, which deletes it."""

from gateway.upstreams.openai_compatible import OpenAICompatibleAdapter
from gateway.upstreams.registry import register


@register
class RecipeDummyAdapter(OpenAICompatibleAdapter):
    kind = "{KIND}"
    label = "Recipe dummy"
    needs_credentials = False
    max_tokens_field = "max_tokens"
'''
MODEL = "hyperinfer/recipe-model"


@pytest.fixture
def dialect_module():
    assert not MODULE.exists(), f"{MODULE} is left over from an earlier run: delete it"
    try:
        yield MODULE
    finally:
        MODULE.unlink(missing_ok=True)
        for compiled in (MODULE.parent / "__pycache__").glob(f"{KIND}.*.pyc"):
            compiled.unlink()
        sys.modules.pop(f"gateway.upstreams.{KIND}", None)
        unregister(KIND)
        dialect_unregister(KIND)
        importlib.invalidate_caches()
        catalog_cache.invalidate()


def catalog_check(path: Path) -> subprocess.CompletedProcess:
    """`manage.py catalog_check` in a fresh process: it knows the kinds of the modules present at start."""
    return subprocess.run(
        [sys.executable, "manage.py", "catalog_check", "--path", str(path)],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def with_recipe_provider(base_url: str) -> dict:
    """Step 3: the shipped providers.yaml plus a provider of the new kind (no credentials_env) and a model."""
    data = yaml.safe_load(Path(settings.CATALOG_PATH).read_text(encoding="utf-8"))
    data["providers"].append(
        {"slug": "recipe", "name": "Recipe upstream", "kind": KIND, "base_url": base_url}
    )
    data["models"].append(
        {
            "slug": MODEL,
            "name": "Recipe model",
            "description": "Served by the dummy dialect of docs/new-dialect.md.",
            "context_length": 8192,
            "max_output_tokens": 1024,
            "pricing": {"prompt": 1, "completion": 2},
            "routes": [{"provider": "recipe", "upstream_model_id": "recipe-upstream-model"}],
        }
    )
    return data


def test_the_recipe_serves_a_new_dialect(gateway_url, funded_key, dialect_module, tmp_path):
    # Step 4: no new fake — the dummy speaks the OpenAI dialect, and the llama.cpp fake takes keyless calls.
    with openai_fake("llamacpp", Scenario(text="Hello from the new dialect"), api_key="") as fake:
        path = tmp_path / "providers.yaml"
        path.write_text(
            yaml.safe_dump(with_recipe_provider(fake.base_url), sort_keys=False), encoding="utf-8"
        )
        refused = catalog_check(path)  # before step 1, the kind is unknown
        assert refused.returncode == 1
        assert f"providers[recipe].kind: unknown kind '{KIND}' (known: anthropic, " in refused.stderr

        dialect_module.write_text(SOURCE, encoding="utf-8")  # step 1
        # Step 2, restart: a new process finds the module; in this one, run what startup runs.
        importlib.invalidate_caches()
        apps.get_app_config("gateway").ready()
        assert KIND in adapter_kinds()
        assert dialect_get(KIND).needs_credentials is False and dialect_get(KIND).label == "Recipe dummy"

        checked = catalog_check(path)  # step 3
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.strip() == "OK: 9 models, 7 providers, 5 creators"
        catalog_load(path)
        catalog_cache.invalidate()

        response = httpx.post(
            f"{gateway_url}/api/v1/chat/completions",
            headers={"Authorization": f"Bearer {funded_key[1]}"},
            json={"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hello"}]},
            timeout=10,
        )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the new dialect"
    [sent] = fake.chat_requests
    assert sent.body["model"] == "recipe-upstream-model"
    assert sent.body["max_tokens"] == 50 and "max_completion_tokens" not in sent.body  # the dummy's own field
    assert "Authorization" not in sent.headers  # no credentials, as its adapter allows
    generation = settled_generation(response.headers["x-request-id"])
    assert (generation.provider, generation.status) == ("recipe", "completed")
    # Priced at the entry's $1/M prompt and $2/M completion (this fake, like llama.cpp, streams no usage).
    assert generation.tokens_completion > 0
    assert generation.cost_micro_usd == generation.tokens_prompt * 1 + generation.tokens_completion * 2
