"""catalog_check / catalog_load as operators run them."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from catalog.models import Model
from tests.catalog.helpers import find, find_model

PRO = "deepseek/deepseek-v4-pro"
LLAMA = "meta-llama/llama-3.1-70b"


def run(command: str, path: Path) -> str:
    out = StringIO()
    call_command(command, "--path", str(path), stdout=out)
    return out.getvalue()


def test_catalog_check_accepts_the_shipped_file(shipped_path: Path) -> None:
    assert run("catalog_check", shipped_path).strip() == "OK: 8 models, 6 providers, 5 creators"


def test_catalog_check_defaults_to_settings_path(write_catalog, shipped_data: dict) -> None:
    shipped_data["models"] = shipped_data["models"][:2]
    path = write_catalog(shipped_data)
    out = StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(settings, "CATALOG_PATH", path)
        call_command("catalog_check", stdout=out)
    assert out.getvalue().strip() == "OK: 2 models, 6 providers, 5 creators"


def _bad_price(d: dict) -> None:
    find_model(d, PRO)["pricing"]["prompt"] = "abc"


def _unknown_provider(d: dict) -> None:
    find_model(d, PRO)["routes"][0]["provider"] = "nope"


def _missing_field(d: dict) -> None:
    del find_model(d, PRO)["context_length"]


def _typo(d: dict) -> None:
    model = find_model(d, PRO)
    model["hugging_face"] = model.pop("hugging_face_id")


def _bad_feature(d: dict) -> None:
    find_model(d, PRO)["features"] = ["tools", "function_calling"]


def _output_over_context(d: dict) -> None:
    find_model(d, PRO).update(context_length=8192, max_output_tokens=16384)


def _bad_unit(d: dict) -> None:
    find_model(d, LLAMA)["benchmarks"][0]["unit"] = "percent"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_bad_price, f"models[{PRO}].pricing.prompt: must be a non-negative number, got 'abc'"),
        (
            _unknown_provider,
            f"models[{PRO}].routes[0].provider: unknown provider 'nope' "
            "(known: anthropic, baseten, cerebras, fireworks, llamacpp, mock)",
        ),
        (_missing_field, f"models[{PRO}].context_length: required field is missing"),
        (_typo, f"models[{PRO}].hugging_face: unknown key (allowed: benchmarks, context_length,"),
        (
            _bad_feature,
            f"models[{PRO}].features[1]: must be one of json_mode, prompt_caching, reasoning, streaming, "
            "tools, vision, got 'function_calling'",
        ),
        (
            _output_over_context,
            f"models[{PRO}].max_output_tokens: must be <= context_length (8192), got 16384",
        ),
        (_bad_unit, f"models[{LLAMA}].benchmarks[0].unit: must be one of %, elo, pass@1, got 'percent'"),
    ],
    ids=[
        "bad-price",
        "unknown-provider",
        "missing-field",
        "unknown-key",
        "bad-feature",
        "output>context",
        "unit",
    ],
)
def test_catalog_check_rejects_a_malformed_file(
    write_catalog, shipped_data: dict, mutate, expected: str
) -> None:
    mutate(shipped_data)
    path = write_catalog(shipped_data)
    with pytest.raises(CommandError) as error:
        run("catalog_check", path)
    assert str(error.value).startswith(f"{path}: {expected}")


def test_catalog_check_as_a_real_process_refuses_an_unknown_kind_naming_it(
    write_catalog, shipped_data: dict
) -> None:
    # A fresh process: the kinds it knows are the ones the gateway registered at startup, nothing hard-coded.
    find(shipped_data, "providers", "fireworks")["kind"] = "fireworkz"
    path = write_catalog(shipped_data)
    done = subprocess.run(
        [sys.executable, "manage.py", "catalog_check", "--path", str(path)],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert (
        f"{path}: providers[fireworks].kind: unknown kind 'fireworkz' (known: anthropic, baseten, cerebras, "
        "fireworks, llamacpp, mock, openai_compatible)"
    ) in done.stderr


@pytest.mark.django_db
def test_catalog_load_refuses_an_unknown_kind_and_writes_nothing(write_catalog, shipped_data: dict) -> None:
    find(shipped_data, "providers", "mock")["kind"] = "sandbox"
    with pytest.raises(CommandError, match=r"providers\[mock\]\.kind: unknown kind 'sandbox' \(known: "):
        run("catalog_load", write_catalog(shipped_data))
    assert not Model.objects.exists()


def test_catalog_check_reports_yaml_syntax_errors_with_line(write_catalog, shipped_path: Path) -> None:
    lines = shipped_path.read_text(encoding="utf-8").splitlines()
    broken_at = next(i for i, line in enumerate(lines) if line.strip() == "name: DeepSeek V4 Pro")
    lines[broken_at] = "    name: [DeepSeek V4 Pro"
    path = write_catalog("\n".join(lines) + "\n")
    with pytest.raises(
        CommandError, match=rf"providers\.yaml: line {broken_at + 2}, column \d+: invalid YAML: "
    ):
        run("catalog_check", path)


@pytest.mark.django_db
def test_catalog_check_writes_nothing(shipped_path: Path) -> None:
    run("catalog_check", shipped_path)
    assert not Model.objects.exists()


def test_catalog_check_as_a_real_process_exits_1_with_the_message(write_catalog, shipped_data: dict) -> None:
    _bad_price(shipped_data)
    path = write_catalog(shipped_data)
    done = subprocess.run(
        [sys.executable, "manage.py", "catalog_check", "--path", str(path)],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"models[{PRO}].pricing.prompt: must be a non-negative number, got 'abc'" in done.stderr
    assert done.stdout == ""


def test_catalog_check_as_a_real_process_exits_0_on_the_shipped_file(shipped_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "catalog_check", "--path", str(shipped_path)],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: 8 models")


@pytest.mark.django_db
def test_catalog_load_prints_counts_and_deactivations(
    write_catalog, shipped_path: Path, shipped_data: dict
) -> None:
    first = run("catalog_load", shipped_path)
    assert "models 8 created, 0 updated, 0 unchanged, 0 deactivated" in first
    assert "providers 6 created" in first
    assert "creators 5 created" in first

    removed = shipped_data["models"].pop()  # the last one, so no other model's position moves
    second = run("catalog_load", write_catalog(shipped_data))
    assert "models 0 created, 0 updated, 7 unchanged, 1 deactivated" in second
    assert f"Deactivated: {removed['slug']}" in second


@pytest.mark.django_db
def test_catalog_load_of_a_bad_file_fails_and_writes_nothing(write_catalog, shipped_data: dict) -> None:
    _unknown_provider(shipped_data)
    with pytest.raises(CommandError, match="unknown provider 'nope'"):
        run("catalog_load", write_catalog(shipped_data))
    assert not Model.objects.exists()
