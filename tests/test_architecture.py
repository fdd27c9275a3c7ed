"""Which modules of an app the other apps may import (docs/architecture.md, "Layers").

The direction between apps is import-linter's layers contract (pyproject.toml, run by `make lint`); this
test adds the other half: an app uses another only through its public modules — its models, services,
selectors and errors, and the few named below — never its internals. `config` and `bench` assemble the
apps and may import anything.
"""

import grimp

APPS = ("core", "catalog", "billing", "console", "gateway")

# An app's modules that other apps may import (a package listed covers its submodules).
PUBLIC: dict[str, set[str]] = {
    "core": {"core"},  # all of it: it exists to be shared
    "catalog": {
        "catalog.models",
        "catalog.selectors",
        "catalog.services",
        "catalog.pricing",
        "catalog.dialects",
        "catalog.snippets",  # ready-to-copy requests: the model pages' and the overview's quickstart
    },
    "billing": {
        "billing.models",
        "billing.services",
        "billing.selectors",
        "billing.errors",
        "billing.money",
        "billing.reservations",  # the SQL meter's reserve/settle
        "billing.key_spend",  # key-limit periods, holds and charges
        "billing.mirror",  # the Redis mirror's layout, shared with the Redis meter's scripts
        "billing.admin",  # inlines for console's admin pages
        "billing.payments",  # money in: card payments and auto top-up
        "billing.stripe_events",  # Stripe's webhook events, stored and applied once
        "billing.usage",  # a workspace's usage over a window, from the rollups (the Usage page)
    },
    "console": {
        "console.models",
        "console.selectors",
        "console.errors",
        "console.services.keys",
        "console.services.workspaces",
        "console.services.accounts",
        "console.tasks",  # auto top-up, queued by the gateway's meters after debits
        "console.views.decorators",  # the signed-in frame of the gateway's activity pages
    },
    "gateway": set(),  # nothing: the gateway is the top of the apps
}


def _is_public(module: str) -> bool:
    app = module.split(".")[0]
    return any(module == public or module.startswith(public + ".") for public in PUBLIC[app])


def cross_app_violations(graph: grimp.ImportGraph) -> list[str]:
    """Every import by one app of another app's non-public module, as 'importer -> imported'."""
    violations = []
    for importer in sorted(graph.modules):
        app = importer.split(".")[0]
        if app not in APPS:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            target = imported.split(".")[0]
            if target in APPS and target != app and not _is_public(imported):
                violations.append(f"{importer} -> {imported}")
    return violations


def test_apps_import_only_each_others_public_modules():
    graph = grimp.build_graph(*APPS, "config", "bench", cache_dir=None)
    assert cross_app_violations(graph) == []


def test_the_check_catches_an_import_of_another_apps_internals():
    graph = grimp.ImportGraph()
    for module in ("gateway.pipeline", "billing.services", "billing.internal", "console.services.secrets"):
        graph.add_module(module)
    graph.add_import(importer="gateway.pipeline", imported="billing.services")
    graph.add_import(importer="gateway.pipeline", imported="billing.internal")
    graph.add_import(importer="gateway.pipeline", imported="console.services.secrets")
    assert cross_app_violations(graph) == [
        "gateway.pipeline -> billing.internal",
        "gateway.pipeline -> console.services.secrets",
    ]


def test_every_public_module_exists():
    graph = grimp.build_graph(*APPS, cache_dir=None)
    missing = {m for modules in PUBLIC.values() for m in modules if m not in graph.modules}
    assert missing == set()
