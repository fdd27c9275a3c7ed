"""The ingress formats the gateway serves: the one list a new format joins (docs/new-format.md).

The router, the generation records' `ingress_format`, the /api/v1/generation documentation and the admin
all read this list; nothing else names the formats.
"""

from gateway.ingress import anthropic_messages, chat_completions, completions, responses
from gateway.ingress.base import IngressFormat

_BY_NAME: dict[str, IngressFormat] = {}
_BY_PATH: dict[str, IngressFormat] = {}


def format_register(fmt: IngressFormat) -> IngressFormat:
    """Serve `fmt` at its PATH; its FORMAT names it in generation records."""
    if _BY_PATH.get(fmt.PATH, fmt) is not fmt or _BY_NAME.get(fmt.FORMAT, fmt) is not fmt:
        raise ValueError(f"another ingress format already has the path {fmt.PATH} or the name {fmt.FORMAT}")
    _BY_NAME[fmt.FORMAT] = fmt
    _BY_PATH[fmt.PATH] = fmt
    return fmt


def format_unregister(fmt: IngressFormat) -> None:
    _BY_NAME.pop(fmt.FORMAT, None)
    _BY_PATH.pop(fmt.PATH, None)


def format_for_path(path: str) -> IngressFormat | None:
    return _BY_PATH.get(path)


def formats() -> list[IngressFormat]:
    return list(_BY_NAME.values())


def format_names() -> list[str]:
    return list(_BY_NAME)


# Gateway endpoints that record generations under a name of their own without being an ingress format.
OTHER_RECORDED_FORMATS = ("embeddings",)  # gateway/embeddings.py


def recorded_format_names() -> list[str]:
    """Every `Generation.ingress_format` value: the formats, then the other endpoints that record."""
    return [*_BY_NAME, *OTHER_RECORDED_FORMATS]


for _fmt in (chat_completions, responses, anthropic_messages, completions):
    format_register(_fmt)
