"""pyproject.toml's runtime dependencies are exactly what the source needs: every third-party import in the
source (not the tests) is declared, and every declared package is imported or named in the settings."""

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
LOCK_PROJECT = "hyperinfer (pyproject.toml)"  # how requirements.lock says "declared in pyproject"
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")  # a module path such as whitenoise.middleware.X
NOT_SOURCE = {"tests", "static", "templates", "docs", "staticfiles"}  # and hidden folders (.venv, .git, …)

# Needed at run time though nothing imports them and no setting names them, each for this reason.
USED_WITHOUT_AN_IMPORT = {
    "lxml-html-clean": "trafilatura (web_fetch) imports lxml.html.clean, which lxml ships separately now",
    "psycopg": "Django's PostgreSQL backend (DATABASES' ENGINE) imports it, with the [binary,pool] extras",
}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {normalized(re.match(r"[A-Za-z0-9._-]+", spec).group()) for spec in project["dependencies"]}


def source_files() -> list[Path]:
    files = list(ROOT.glob("*.py"))
    for folder in ROOT.iterdir():
        if folder.is_dir() and folder.name not in NOT_SOURCE and not folder.name.startswith("."):
            files += folder.rglob("*.py")
    return files


def local_names() -> set[str]:
    return {path.stem for path in ROOT.glob("*.py")} | {
        path.name for path in ROOT.iterdir() if path.is_dir() and any(path.rglob("*.py"))
    }


def optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside `try: import x` / `except ImportError:`: the code runs without the package."""
    while node in parents:
        child, node = node, parents[node]
        if isinstance(node, ast.Try) and child in node.body:
            for handler in node.handlers:
                caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                if {"ImportError", "ModuleNotFoundError"} & {getattr(name, "id", "") for name in caught}:
                    return True
    return False


@functools.cache
def third_party_imports() -> dict[str, set[str]]:
    """Top-level module name → the source files importing it unconditionally."""
    local = local_names()
    found: dict[str, set[str]] = {}
    for path in source_files():
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in local or optional(node, parents):
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def named_in_settings() -> set[str]:
    """Top-level modules the settings name: installed apps, and dotted paths (middleware, backends, …)."""
    names = {app.split(".")[0] for app in settings.INSTALLED_APPS}
    source = ast.parse((ROOT / "config" / "settings.py").read_text())
    for node in ast.walk(source):
        dotted = (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED.fullmatch(node.value)
        )
        if dotted:
            names.add(node.value.split(".")[0])
    return names


@functools.cache
def installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    return {normalized(name) for name in installed_distributions().get(module, [])}


def test_every_third_party_import_in_the_source_is_a_declared_runtime_dependency():
    declared = runtime_dependencies()
    undeclared = {
        module: sorted(files)
        for module, files in third_party_imports().items()
        if not distributions_of(module) & declared
    }
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


def test_every_runtime_dependency_is_imported_or_named_in_the_settings():
    used = set()
    for module in third_party_imports().keys() | named_in_settings():
        used |= distributions_of(module)
    unused = runtime_dependencies() - used - set(USED_WITHOUT_AN_IMPORT)
    assert not unused, f"declared but neither imported nor named in settings: {sorted(unused)}"


def test_the_allowlist_names_only_declared_packages_that_need_it():
    used = set()
    for module in third_party_imports().keys() | named_in_settings():
        used |= distributions_of(module)
    assert set(USED_WITHOUT_AN_IMPORT) <= runtime_dependencies()
    assert not set(USED_WITHOUT_AN_IMPORT) & used, "imported now: drop it from USED_WITHOUT_AN_IMPORT"


def test_the_check_sees_imports_and_settings():
    """Guard the guard: it finds what we know is there, and skips optional imports."""
    imports = third_party_imports()
    assert {"django", "rest_framework", "aiohttp", "jsonschema", "yaml"} <= imports.keys()
    assert "orjson" in imports  # core/encoding.py
    assert "mock_upstream" not in str(imports.get("uvloop"))  # it imports uvloop under `except ImportError`
    assert not imports.keys() & local_names()
    assert {"daphne", "whitenoise", "channels"} <= named_in_settings()
    assert distributions_of("yaml") == {"pyyaml"}


def test_the_lock_pins_the_declared_packages_and_only_what_they_need():
    """requirements.lock (pip-compile's format) agrees with pyproject: its direct pins are exactly the
    declared packages, runtime and dev, and every other pin is wanted by a package still in the lock."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    declared = {normalized(re.match(r"[A-Za-z0-9._-]+", spec).group()) for spec in specs}
    wanted_by: dict[str, set[str]] = {}
    package = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            package = normalized(line.split("==")[0])
            wanted_by[package] = set()
        elif package and line.strip().startswith("#") and line.strip() != "# via":
            by = line.strip().removeprefix("# via").strip(" #")
            wanted_by[package].add(by if by == LOCK_PROJECT else normalized(by))
    assert {name for name, via in wanted_by.items() if LOCK_PROJECT in via} == declared
    for name, via in wanted_by.items():
        assert via and via <= wanted_by.keys() | {LOCK_PROJECT}, f"{name} is wanted by nothing in the lock"
