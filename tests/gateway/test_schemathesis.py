"""The served /openapi.json, held to by schemathesis: every operation, the examples, coverage and fuzzing
phases, every check. The gateway runs for real (uvicorn, PostgreSQL, Redis) with a funded key, and the
sandbox models answer at once, so generated requests that are valid reach a real answer.

schemathesis runs as its own process (its CLI, pinned in pyproject.toml); its configuration, and why each
setting is what it is, is `tests/gateway/schemathesis.toml`. The number of cases it ran is printed.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.models import Route
from console.services.keys import api_key_create
from gateway.catalog_cache import catalog_cache
from gateway.models import Generation
from gateway.openapi import openapi_document
from tests.factories import make_user, make_workspace

CONFIG = Path(__file__).with_name("schemathesis.toml")
INTERNAL_TOKEN = "contract-test-internal-token-0123456789"
MIN_CASES = 2_000


@pytest.fixture
def instant_sandbox(shipped_catalog):
    """The sandbox models without their demo pacing: thousands of answers in seconds."""
    instant = {"first_token_ms": 0, "tokens_per_second": 1e6}
    Route.objects.filter(provider__kind="mock").update(options=instant)
    catalog_cache.invalidate()


def cases_run(output: str) -> int:
    """The number of test cases schemathesis reports having generated and sent."""
    found = re.search(r"Test cases:\s*\n?\s*(\d+) generated", output)
    assert found, output[-3000:]
    return int(found.group(1))


def test_the_served_openapi_holds_under_schemathesis(
    settings, instant_sandbox, gateway_url, capsys, tmp_path
):
    settings.INTERNAL_TOKEN = INTERNAL_TOKEN
    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=10_000_000_000)  # never short of credits
    key = api_key_create(workspace=workspace, name="schemathesis", created_by=owner).secret
    command = [
        Path(sys.executable).with_name("schemathesis"),
        "--config-file",
        CONFIG,
        "run",
        f"{gateway_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--header",
        f"X-Internal-Token: {INTERNAL_TOKEN}",
        # Every operation: unasked, schemathesis leaves out the one it loaded the document from.
        "--include-path-regex",
        "^/",
    ]
    command += os.environ.get("SCHEMATHESIS_ARGS", "").split()  # a developer's extra options, e.g. a filter
    environment = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    # In a folder of its own: schemathesis keeps a cache (.schemathesis/) where it runs.
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900, cwd=tmp_path)
    output = done.stdout + done.stderr
    if saved := os.environ.get("SCHEMATHESIS_OUTPUT"):  # the whole report, for a developer to read
        Path(saved).write_text(output)
    with capsys.disabled():
        summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-2000:]
        print(f"\nschemathesis: {cases_run(output)} cases\n{summary}")
    assert done.returncode == 0, output[-20000:]
    assert cases_run(output) >= MIN_CASES
    documented = sum(len(operations) for operations in openapi_document()["paths"].values())
    assert re.search(rf"Operations:\s+{documented} selected / {documented} total", output), output[:1500]
    # Valid requests got through to real answers, streamed and not.
    completed = Generation.objects.filter(workspace=workspace, status="completed")
    assert completed.filter(streamed=True).exists() and completed.filter(streamed=False).exists()
