"""Where a process's CPU goes, by Python function: `perf script` output read back, each sample counted for
the innermost Python function on its stack (with the C it called: a socket write is its caller's).

CPython 3.12+ names its Python frames to perf when `PYTHONPERFSUPPORT=1` is in its environment (the bench
passes its own environment to the servers it starts); `perf record -e cpu-clock` samples only what is on a
CPU, unlike py-spy, which counts a runnable thread that waits for the CPU as busy. CPython 3.11, the
project's, cannot name them: profile a 3.12+ venv of the same tree. The procedure (bench/README.md, "Where
a worker's CPU goes, on the CPU"):

    PYTHONPERFSUPPORT=1 <3.13 venv>/bin/python -m bench.run --soak 150000 --concurrency 32 …
    perf record -e cpu-clock --call-graph dwarf,32768 -F 400 -p <a worker's pid> -o perf.data -- sleep 20
    perf script -i perf.data > perf.txt
    python -m bench.perf_names perf.txt --top 50 [--inclusive]
"""

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# A frame line of `perf script`: "<address> <symbol>+<offset> (<object>)"; CPython's trampolines name a
# Python function "py::<qualified name>:<file>".
_FRAME = re.compile(r"^\s*[0-9a-f]+\s+(?P<symbol>.*?)\s+\((?P<object>[^)]*)\)\s*$")
_PYTHON = re.compile(r"^py::(?P<function>.+?)(?:\+0x[0-9a-f]+)?$")


@dataclass(frozen=True, slots=True)
class Sample:
    python: str | None  # the innermost Python function ("qualified name:file"), None if there is none
    native: str  # the object file of the innermost frame ("[kernel.kallsyms]", "libpython3.13.so.1.0", …)
    stack: frozenset[str] = frozenset()  # every Python function on the stack (a stage's inclusive share)


def samples(lines: Iterable[str]) -> Iterator[Sample]:
    """The samples of `perf script`'s text: a header line, its frames (innermost first), a blank line."""
    frames: list[tuple[str, str]] | None = None
    for line in [*lines, ""]:
        if not line.strip():
            if frames:
                yield _sample(frames)
            frames = None
        elif not line[0].isspace():
            frames = []  # a sample's header: "<comm> <pid> <time>: <period> <event>:"
        elif frames is not None and (frame := _FRAME.match(line)):
            frames.append((frame["symbol"], frame["object"]))


def _sample(frames: list[tuple[str, str]]) -> Sample:
    pythons = [m["function"] for symbol, _ in frames if (m := _PYTHON.match(symbol))]
    # An inlined function's frame names no object: the object is its caller's, the next frame's.
    native = next((name for _, name in frames if name != "inlined"), "inlined")
    return Sample(
        python=pythons[0] if pythons else None, native=native.rsplit("/", 1)[-1], stack=frozenset(pythons)
    )


def shares(found: Iterable[Sample]) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, by innermost Python function, by the innermost frame's object file)."""
    total, by_function, by_object = 0, Counter[str](), Counter[str]()
    for sample in found:
        total += 1
        by_function[sample.python or "(no Python frame)"] += 1
        by_object[sample.native] += 1
    return total, by_function, by_object


def on_the_stack(found: Iterable[Sample]) -> Counter[str]:
    """Samples by every Python function on their stack, callers included: what a stage costs in all (a
    resumed coroutine's awaiting callers are on the stack with it)."""
    inclusive = Counter[str]()
    for sample in found:
        inclusive.update(sample.stack)
    return inclusive


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("perf_script", help="the text `perf script` printed")
    parser.add_argument("--top", type=int, default=40, help="how many functions to list (default 40)")
    parser.add_argument(
        "--inclusive", action="store_true", help="also list functions by the samples they are on the stack of"
    )
    args = parser.parse_args(argv)
    with open(args.perf_script, errors="replace") as text:
        found = list(samples(text))
    total, by_function, by_object = shares(found)
    if not total:
        sys.exit(
            "no samples: was it recorded with --call-graph, from a 3.12+ CPython with PYTHONPERFSUPPORT=1?"
        )
    print(f"{total} samples\n\nby the innermost Python function (its C calls included):")
    for function, count in by_function.most_common(args.top):
        print(f"{100 * count / total:5.1f} %  {function}")
    print("\nby the innermost frame's object:")
    for name, count in by_object.most_common(12):
        print(f"{100 * count / total:5.1f} %  {name}")
    if args.inclusive:
        print("\nby every Python function on the stack (callers included):")
        for function, count in on_the_stack(found).most_common(args.top):
            print(f"{100 * count / total:5.1f} %  {function}")


if __name__ == "__main__":
    main()
