"""Small, typed readers for the environment variables that configure HyperInfer."""

import os

from django.core.exceptions import ImproperlyConfigured

from core.processes import process_alive

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def usd_to_micro(name: str, default: str) -> int:
    """Read a USD amount such as "1.50" as integer micro-USD, without float rounding."""
    from decimal import Decimal, InvalidOperation

    raw = os.environ.get(name, default)
    try:
        micro = Decimal(raw) * 1_000_000
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name} must be a USD amount like 1.50, got {raw!r}") from exc
    if micro != micro.to_integral_value() or micro < 0:
        raise ImproperlyConfigured(f"{name} must be a non-negative USD amount with at most 6 decimals")
    return int(micro)


# Set beside PROMETHEUS_MULTIPROC_DIR when the directory is the default: a child process that inherits the
# pair (a server a test or the bench starts) is a deployment of its own and picks its own default.
_METRICS_DIR_IS_DEFAULT = "HYPERINFER_METRICS_DIR_IS_DEFAULT"


def metrics_dir() -> str:
    """Where this process's Prometheus metrics live (prometheus_client's multiprocess mode), exported as
    PROMETHEUS_MULTIPROC_DIR before any metric exists, since prometheus_client reads it there.

    An operator's PROMETHEUS_MULTIPROC_DIR is used as given (empty it before each start). The default is one
    directory per process group under the temporary directory: the uvicorn supervisor's pid for its workers
    (it loads no settings, so cannot prepare one), else this process's own. A new deployment thus starts
    from a fresh directory, and the directories of groups that are gone are removed here."""
    import multiprocessing
    import shutil
    import tempfile

    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if given and not os.environ.get(_METRICS_DIR_IS_DEFAULT):
        os.makedirs(given, exist_ok=True)
        return given
    root = os.path.join(tempfile.gettempdir(), f"hyperinfer-metrics-{os.getuid()}")
    os.makedirs(root, mode=0o700, exist_ok=True)
    if os.stat(root).st_uid != os.getuid():
        raise ImproperlyConfigured(f"{root} belongs to another user: set PROMETHEUS_MULTIPROC_DIR")
    supervisor = multiprocessing.parent_process()  # uvicorn --workers spawns its workers with multiprocessing
    group = supervisor.pid if supervisor is not None and supervisor.pid else os.getpid()
    for name in os.listdir(root):
        if name.isdigit() and int(name) != group and not process_alive(int(name)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    directory = os.path.join(root, str(group))
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ[_METRICS_DIR_IS_DEFAULT] = "1"
    return directory
