"""`python -m benchmarks.perf` lists every speed script, and only those, with how to run it."""

from __future__ import annotations

from pathlib import Path

from benchmarks.perf.__main__ import SCRIPTS, listing, main

PERF = Path(__file__).resolve().parents[1] / "benchmarks" / "perf"


def runnable_modules() -> set[str]:
    """Modules in benchmarks/perf that run as a script (they end in a __main__ guard)."""
    return {
        path.stem
        for path in PERF.glob("*.py")
        if not path.stem.startswith("__") and 'if __name__ == "__main__":' in path.read_text()
    }


def test_the_table_is_every_script_in_the_package():
    assert set(SCRIPTS) == runnable_modules()


def test_help_lists_each_script_with_a_line_and_its_command(capsys):
    assert main([]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == listing().strip()
    for name in SCRIPTS:
        (line,) = [row for row in printed.splitlines() if row.strip().startswith(f"{name} ")]
        assert len(line.split(None, 1)[1]) > 20  # a description, not just the name
        assert f"python -m benchmarks.perf.{name} --help" in printed
