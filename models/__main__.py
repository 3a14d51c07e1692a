"""`python -m models list`: every registered backbone and whether it can run here."""

from __future__ import annotations

import argparse
import sys

from models import availability, list_specs

_STATUS_WORDS = {
    "ready": "weights present",
    "download": "needs a download",
    "gated": "gated",
    "unsupported": "cannot be loaded by this code",
}


def _list(args: argparse.Namespace) -> int:
    rows = []
    for spec in list_specs(family=args.family):
        avail = availability(spec)
        rows.append(
            (
                spec.key,
                spec.family,
                spec.library,
                str(spec.dim),
                str(spec.input_size),
                "yes" if spec.has_text else "no",
                spec.licence if len(spec.licence) < 28 else spec.licence[:25] + "...",
                _STATUS_WORDS[avail.status],
                avail.detail,
            )
        )
    header = ("key", "family", "library", "dim", "input", "text", "licence", "here", "detail")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        print("  ".join(cells), " ", row[-1])
    ready = sum(availability(s).ready for s in list_specs(family=args.family))
    print(f"\n{len(rows)} backbones, {ready} runnable on this machine now.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="print the registry with availability here")
    p_list.add_argument("--family", choices=["general", "medical", "dermatology", "classical"])
    p_list.set_defaults(func=_list)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
