"""Runs localstripe, the Stripe double of `make run` and the tests, with its store where we say.

localstripe keeps its objects in /tmp/localstripe.pickle, one file for every instance on the machine, and
rewrites it whole on each change: two instances (a developer's `make run` and a test run, two test runs)
truncate each other's file and the next start fails ("pickle data was truncated"). Here each instance has
its own file (`--store`), written atomically, or none (`--no-store`, the tests: all in memory).

    python -m billing.stripe_double --port 8420 --store .local/localstripe.pickle
"""

import argparse
import os
import pickle
import sys
from pathlib import Path

from localstripe import resources, server  # type: ignore[import-untyped]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8420)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", type=Path, help="the file its objects are kept in across restarts")
    where.add_argument("--no-store", action="store_true", help="keep everything in memory")
    args = parser.parse_args()
    store: Path | None = None if args.no_store else args.store

    def load(self: dict[str, object]) -> None:
        if store is not None and store.exists():
            with store.open("rb") as f:
                self.clear()
                self.update(pickle.load(f))

    def dump(self: dict[str, object]) -> None:
        if store is not None:
            store.parent.mkdir(parents=True, exist_ok=True)
            partial = store.with_suffix(".partial")
            with partial.open("wb") as f:
                pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(partial, store)  # never a half-written store

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump
    sys.argv = ["localstripe", "--port", str(args.port)]
    server.start()


if __name__ == "__main__":
    main()
