"""`python -m data_index explain`: write the similarity map of a match as a PNG (and a .npy)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def add_explain_command(sub: argparse._SubParsersAction, *, load_backbone) -> None:
    p = sub.add_parser("explain", help="similarity map: which parts of a match look like the query")
    p.add_argument("--backbone", required=True, help="registry key (python -m models list)")
    p.add_argument("--query", required=True, help="the query photo")
    p.add_argument("--match", required=True, help="the retrieved photo the map is drawn over")
    p.add_argument("--out", required=True, help="PNG: the match with its map blended on")
    p.add_argument("--npy", help="also save the map over the match (height x width, 0..1)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_explain, load_backbone=load_backbone)


def cmd_explain(args: argparse.Namespace) -> int:
    from data_index.explain import overlay, similarity_maps

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out must name a .png file, not {out.name}.")
    if args.npy and Path(args.npy).suffix.lower() != ".npy":
        raise ValueError(f"--npy must name a .npy file, not {Path(args.npy).name}.")
    backbone = args.load_backbone(args.backbone, device=args.device)
    pair = similarity_maps(backbone, query=args.query, match=args.match)
    out.parent.mkdir(parents=True, exist_ok=True)
    overlay(args.match, pair.match.heat).save(out)
    print(
        f"wrote {out} ({backbone.key}; bright = most like some part of the query, centred "
        f"cosine {pair.match.low:.2f} to {pair.match.high:.2f})"
    )
    if args.npy:
        Path(args.npy).parent.mkdir(parents=True, exist_ok=True)
        np.save(args.npy, pair.match.heat)
        print(f"wrote {args.npy} ({pair.match.heat.shape[0]} x {pair.match.heat.shape[1]})")
    return 0
