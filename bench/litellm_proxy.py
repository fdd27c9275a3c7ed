"""LiteLLM's proxy as an optional fourth target (`--litellm-python PATH`), for issue 18's "≥ 10x LiteLLM".

LiteLLM is not a dependency of the project: the user installs `litellm[proxy]` in a venv of its own
(bench/README.md says how) and passes that venv's python. The bench writes a config in its temp dir that
routes the model `bench-echo` to the mock upstream as an OpenAI-compatible provider, with the mock's key,
and starts the proxy with the gateway's number of workers, no database and a master key (so it checks a key
per request, as the gateway does). Everything it would fetch from the internet at start-up (the model cost
map, blog posts, beta headers, presets, policy templates, Hugging Face files) is pinned to the copies
bundled with the package, and its telemetry is off: the run talks to nothing but loopback.
"""

import os
import subprocess
from pathlib import Path

from bench.stack import UPSTREAM_KEY_ENV, UPSTREAM_MODEL, BenchError

HEALTH_PATH = "/health/liveliness"  # answered without a key, and without calling any model
MASTER_KEY_ENV = "BENCH_LITELLM_MASTER_KEY"

CONFIG = """\
# Written by bench/run.py: LiteLLM's route to the benchmark's mock upstream.
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: http://127.0.0.1:{port}/v1
      api_key: os.environ/{key_env}
litellm_settings:
  drop_params: true
  request_timeout: 60
general_settings:
  master_key: os.environ/{master_env}
"""

# Each of these makes LiteLLM use the file bundled with the package instead of fetching it from GitHub.
LOCAL_COPIES = (
    "LITELLM_LOCAL_MODEL_COST_MAP",
    "LITELLM_LOCAL_BLOG_POSTS",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS",
    "LITELLM_LOCAL_POLICY_TEMPLATES",
)


def write_config(workdir: Path, upstream_port: int) -> Path:
    path = workdir / "litellm.yaml"
    path.write_text(
        CONFIG.format(
            model=UPSTREAM_MODEL, port=upstream_port, key_env=UPSTREAM_KEY_ENV, master_env=MASTER_KEY_ENV
        )
    )
    return path


def argv(python: Path, config: Path, port: int, workers: int) -> list[str]:
    """LiteLLM's own CLI (the `litellm` script's entry point), run by the given interpreter; with 2+
    workers it runs uvicorn with uvloop, as the gateway does."""
    command = "from litellm.proxy.proxy_cli import run_server; run_server()"
    flags = ["--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    return [str(python), "-c", command, *flags, "--num_workers", str(workers)]


def describe(workers: int) -> str:
    flags = f"--config litellm.yaml --num_workers {workers}"
    return f"litellm {flags}; no database; a master key; LITELLM_LOG=ERROR"


def env(scrubbed: tuple[str, ...], upstream_key: str, master_key: str) -> dict[str, str]:
    """The parent's environment without the gateway's settings (LiteLLM also reads DATABASE_URL and
    REDIS_URL, and would then want a database), with everything that phones home turned off."""
    child = {name: value for name, value in os.environ.items() if name not in scrubbed}
    child = {name: value for name, value in child.items() if not name.startswith(("LITELLM_", "PYTHON"))}
    child.update(dict.fromkeys(LOCAL_COPIES, "True"))
    child.update(
        {
            UPSTREAM_KEY_ENV: upstream_key,
            MASTER_KEY_ENV: master_key,
            "LITELLM_TELEMETRY_DISABLED": "true",
            "LITELLM_MODE": "PRODUCTION",  # "DEV" (the default) loads a .env from the working directory
            "LITELLM_LOG": "ERROR",  # also the level of uvicorn's logger: no access log, as the gateway
            "HF_HUB_OFFLINE": "1",  # tokenizers come from the package, never from the Hub
            "TRANSFORMERS_OFFLINE": "1",
            "NO_PROXY": "127.0.0.1,localhost",  # an HTTP(S)_PROXY of the shell must not see loopback calls
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return child


def version(python: Path) -> str:
    """The installed LiteLLM's version; a clear error when the venv lacks it."""
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    try:
        done = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise BenchError(f"--litellm-python {python}: {exc}") from exc
    if done.returncode != 0:
        raise BenchError(
            f"--litellm-python {python} has no litellm package (install 'litellm[proxy]' in its venv, see "
            f"bench/README.md): {done.stderr.strip()[-500:]}"
        )
    return done.stdout.strip()
