from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from django.core import checks

        from gateway.tools.registry import check_server_tools

        checks.register(check_server_tools)
        # The catalog accepts exactly the kinds the gateway has adapters for: it learns them here, at startup,
        # so that it never imports the gateway (docs/new-dialect.md).
        from catalog.dialects import dialect_register
        from gateway.upstreams.registry import adapters_load

        for kind, adapter in adapters_load().items():
            dialect_register(
                kind=kind,
                label=vars(type(adapter)).get("label") or kind,  # its own label, not its base class's
                needs_base_url=adapter.needs_base_url,
                needs_credentials=adapter.needs_credentials,
            )
