from argparse import ArgumentParser
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.fields import CatalogError
from catalog.loader import catalog_load


class Command(BaseCommand):
    help = "Validate providers.yaml and sync it into the database (models missing from it are deactivated)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--path", type=Path, default=None, help="Defaults to settings.CATALOG_PATH.")

    def handle(self, *args: object, path: Path | None = None, **options: object) -> None:
        try:
            result = catalog_load(path or settings.CATALOG_PATH)
        except CatalogError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(result.summary())
        if result.deactivated:
            self.stdout.write(f"Deactivated: {', '.join(result.deactivated)}")
