"""`python -m benchmarks.perf`: list the speed scripts and how to run each."""

from __future__ import annotations

import argparse
import ast
import sys
from importlib.util import find_spec
from pathlib import Path

# The speed scripts, by module name under benchmarks.perf; each one's description is the first
# line of its own docstring, so the list and the scripts cannot drift apart.
SCRIPTS: tuple[str, ...] = (
    "app_latency",
    "app_load",
    "audit",
    "audit_scale",
    "backbones",
    "k_reciprocal",
    "million",
    "pointing_game",
    "runtimes",
    "search",
    "search_overhead",
    "session_memory",
    "space_rehearsal",
)


def summary(name: str) -> str:
    """First docstring line of ``benchmarks.perf.<name>``, read without importing it (some
    scripts import torch, which takes seconds)."""
    spec = find_spec(f"benchmarks.perf.{name}")
    if spec is None or spec.origin is None:
        raise ValueError(f"benchmarks.perf.{name} does not exist; SCRIPTS lists {SCRIPTS}.")
    text = ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""
    return text.split("\n")[0]


def listing() -> str:
    """Each script's name, what it measures, and the command that explains its options."""
    width = max(len(name) for name in SCRIPTS)
    lines = ["speed scripts (each writes its figures under benchmarks/results/):"]
    for name in SCRIPTS:
        lines += [f"  {name.ljust(width)}  {summary(name)}"]
        lines += [f"  {' ' * width}  python -m benchmarks.perf.{name} --help"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf",
        description=__doc__.split("\n")[0].split(": ", 1)[1],
        epilog=listing(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    print(listing())
    return 0


if __name__ == "__main__":
    sys.exit(main())
