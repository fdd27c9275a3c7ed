"""The upstream dialects a provider's `kind` may name: an extension point the serving app fills.

The catalog keeps no list of kinds and imports no adapter. The gateway registers each of its adapters here
at startup (gateway/apps.py) with what a providers.yaml entry of that kind must carry; the loader, the
admin and `catalog_check` refuse a kind that nobody registered.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dialect:
    kind: str
    label: str  # for people, e.g. in the admin's select
    needs_base_url: bool
    needs_credentials: bool  # false: credentials_env is optional (a local server without auth)


_DIALECTS: dict[str, Dialect] = {}


def dialect_register(*, kind: str, label: str, needs_base_url: bool, needs_credentials: bool) -> Dialect:
    """Accept `kind` in the catalog (registering it again replaces it)."""
    dialect = Dialect(kind, label, needs_base_url=needs_base_url, needs_credentials=needs_credentials)
    _DIALECTS[kind] = dialect
    return dialect


def dialect_unregister(kind: str) -> None:
    _DIALECTS.pop(kind, None)


def dialect_get(kind: str) -> Dialect | None:
    return _DIALECTS.get(kind)


def dialect_kinds() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(_DIALECTS)


def dialect_choices() -> list[tuple[str, str]]:
    """(kind, label) pairs for a form's select, sorted by kind."""
    return [(kind, _DIALECTS[kind].label) for kind in dialect_kinds()]


def dialect_unknown_message(kind: str) -> str:
    """Why `kind` is refused, listing the kinds that would be accepted."""
    if not _DIALECTS:
        return f"unknown kind {kind!r} (no dialect is registered: the gateway app registers them at startup)"
    return f"unknown kind {kind!r} (known: {', '.join(dialect_kinds())})"
