from argparse import ArgumentParser
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.fields import CatalogError
from catalog.loader import catalog_parse


class Command(BaseCommand):
    help = "Validate providers.yaml without touching the database."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--path", type=Path, default=None, help="Defaults to settings.CATALOG_PATH.")

    def handle(self, *args: object, path: Path | None = None, **options: object) -> None:
        try:
            catalog = catalog_parse(path or settings.CATALOG_PATH)
        except CatalogError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"OK: {len(catalog.models)} models, {len(catalog.providers)} providers, "
            f"{len(catalog.creators)} creators"
        )
