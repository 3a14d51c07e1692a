"""Start-up settings (command line and environment) and the list of libraries to choose from."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from data_index import cache_root
from data_index.hub import is_hub_source, materialise, read_card
from data_index.locations import REPO_ROOT
from models.runtime_onnx import RUNTIME_HELP, RUNTIMES, parse_runtime

DEFAULT_BACKBONE = "efficientnet-lite0"
DEFAULT_PORT = 7860
# The getting-started page's one-click library: HAM10000 as mirrored on the Hub (its test
# split), sampled. HAM10000 is CC BY-NC-SA 4.0 (Tschandl et al. 2018): a non-commercial public
# Space may show it with attribution; the mirror's card states no licence of its own.
DEMO_LIBRARY = "hf://datasets/marmal88/skin_cancer:test"
DEMO_CASES = 300
LIBRARY_SUFFIXES = (".zip", ".csv", ".parquet")


@dataclass(frozen=True)
class AppConfig:
    """What the app starts with: the configured library, else the first shared dataset; None
    (neither) opens the app on its getting-started page."""

    library: str | None
    backbone: str
    host: str
    port: int
    torch_threads: int | None = None  # None leaves torch's default
    max_cases: int | None = None  # a sample of a Hugging Face library
    # Uploads are private to their session unless the operator shares them (private servers).
    allow_shared_uploads: bool = False
    upload_ttl_minutes: float = 60.0
    # The session's query photo (a small JPEG preview) is dropped this long after it was set.
    photo_ttl_minutes: float = 30.0
    runtime: str = "torch"  # "onnx"/"openvino": image towers from an exported graph on the CPU


def configure_torch(config: AppConfig) -> None:
    """Apply the intra-op thread count before any model runs.

    One thread per request is the default: the app serves single photos to concurrent users,
    and on small shared CPUs two intra-op threads per request were several times slower than
    one (benchmarks/results/backbone_latency.json) while concurrent requests oversubscribe them.
    """
    if config.torch_threads:
        import torch

        torch.set_num_threads(config.torch_threads)


def parse_config(
    argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None
) -> AppConfig:
    """Flags win over environment variables, which win over defaults.

    Unknown flags are ignored so that hosts that add their own (Spaces, notebooks) still start.
    """
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(prog="app.py", description="dermsearch case-search demo")
    parser.add_argument(
        "--library",
        default=env.get("DERMSEARCH_LIBRARY") or None,
        help="case library: folder of class folders, manifest CSV/Parquet, zip, bundle, or "
        "hf://datasets/<org>/<name>[@rev][:split] (env DERMSEARCH_LIBRARY)",
    )
    parser.add_argument(
        "--max-cases",
        type=int,
        default=int(env.get("DERMSEARCH_MAX_CASES") or 0) or None,
        help="a Hugging Face library: a seeded sample of N cases (env DERMSEARCH_MAX_CASES)",
    )
    parser.add_argument(
        "--backbone",
        default=env.get("DERMSEARCH_BACKBONE") or DEFAULT_BACKBONE,
        help=f"backbone key (env DERMSEARCH_BACKBONE; default {DEFAULT_BACKBONE})",
    )
    parser.add_argument(
        "--host",
        default=env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        help="address to listen on (env GRADIO_SERVER_NAME; 0.0.0.0 to expose)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get("GRADIO_SERVER_PORT") or DEFAULT_PORT),
        help=f"port (env GRADIO_SERVER_PORT; default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=int(env.get("DERMSEARCH_TORCH_THREADS") or 1),
        help="torch intra-op threads per request (env DERMSEARCH_TORCH_THREADS; default 1)",
    )
    parser.add_argument(
        "--allow-shared-uploads",
        action="store_true",
        default=env.get("DERMSEARCH_SHARED_UPLOADS", "").strip() in ("1", "true", "yes"),
        help="keep uploaded libraries for every visitor and across restarts, for a private "
        "deployment (env DERMSEARCH_SHARED_UPLOADS=1; default: each upload is private to its "
        "browser session)",
    )
    parser.add_argument(
        "--upload-ttl-minutes",
        type=float,
        default=float(env.get("DERMSEARCH_UPLOAD_TTL_MINUTES") or 60),
        help="a private upload is deleted this long after it was added, or when its session "
        "ends (env DERMSEARCH_UPLOAD_TTL_MINUTES; default 60)",
    )
    parser.add_argument(
        "--photo-ttl-minutes",
        type=float,
        default=float(env.get("DERMSEARCH_PHOTO_TTL_MINUTES") or 30),
        help="a session's query photo (kept as a JPEG of at most 1024 px) is dropped from memory "
        "this long after it was added, or when the session ends (env "
        "DERMSEARCH_PHOTO_TTL_MINUTES; default 30)",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=env.get("DERMSEARCH_RUNTIME") or "torch",
        help=f"embedding runtime (env DERMSEARCH_RUNTIME; default torch): {RUNTIME_HELP}",
    )
    args, _unknown = parser.parse_known_args(list(argv or []))
    library = args.library or None
    if library and not is_hub_source(library):
        library = str(Path(library).expanduser().resolve())
    if library is None:
        library = first_shared_library(env)
    return AppConfig(
        library=library,
        backbone=args.backbone,
        host=args.host,
        port=args.port,
        torch_threads=max(1, args.torch_threads),
        max_cases=args.max_cases,
        allow_shared_uploads=bool(args.allow_shared_uploads),
        upload_ttl_minutes=max(0.05, args.upload_ttl_minutes),
        photo_ttl_minutes=max(0.01, args.photo_ttl_minutes),
        runtime=parse_runtime(args.runtime),
    )


def local_library(config: AppConfig) -> AppConfig:
    """A Hugging Face library is unpacked into the cache (once; later starts reuse it) and the
    app opens that folder like any other."""
    if config.library and is_hub_source(config.library):
        folder = materialise(config.library, max_cases=config.max_cases)
        return replace(config, library=str(folder))
    return config


def shared_datasets_dir(env: Mapping[str, str] | None = None) -> Path:
    """``../shared/datasets`` beside the checkout (``DERMSEARCH_SHARED`` moves ``../shared``)."""
    shared = (os.environ if env is None else env).get("DERMSEARCH_SHARED")
    return (Path(shared).expanduser() if shared else REPO_ROOT.parent / "shared") / "datasets"


def first_shared_library(env: Mapping[str, str] | None = None) -> str | None:
    """The library a first visit opens when none is configured: the first shared dataset."""
    shared = shared_datasets_dir(env)
    if not shared.is_dir():
        return None
    found = sorted(p for p in shared.iterdir() if _is_library(p))
    return str(found[0].resolve()) if found else None


def uploads_dir() -> Path:
    """Where uploaded libraries are kept (a zip or manifest each), under the cache root."""
    return cache_root() / "uploads"


def _is_library(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in LIBRARY_SUFFIXES
    if not path.is_dir():
        return False
    if (path / "manifest.csv").is_file() or (path / "manifest.parquet").is_file():
        return True
    return any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())


def library_choices(
    *, extra: Sequence[str] = (), include_uploads: bool = True
) -> list[tuple[str, str]]:
    """(label, path) for every library found on disk: shared datasets, ``DERMSEARCH_LIBRARIES``
    (paths separated by ``os.pathsep``), shared uploads, and ``extra`` (e.g. the start-up
    library). The app offers them by id through ``demo.catalog``, never by path."""
    found: list[tuple[str, Path]] = []
    shared = shared_datasets_dir()
    if shared.is_dir():
        found += [("shared", p) for p in sorted(shared.iterdir()) if _is_library(p)]
    for raw in os.environ.get("DERMSEARCH_LIBRARIES", "").split(os.pathsep):
        if raw.strip() and _is_library(Path(raw.strip()).expanduser()):
            found.append(("configured", Path(raw.strip()).expanduser()))
    uploads = uploads_dir()
    if include_uploads and uploads.is_dir():
        # Dot folders are uploads being checked; sessions/ holds private uploads.
        kept = [p for p in sorted(uploads.iterdir()) if not p.name.startswith(".")]
        found += [("uploaded", p) for p in kept if p.name != "sessions" and _is_library(p)]
    found += [("configured", Path(p)) for p in extra if p]
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for origin, path in found:
        resolved = str(path.resolve())
        if resolved not in seen:
            seen.add(resolved)
            out.append((f"{library_display_name(resolved)} ({origin})", resolved))
    return out


def library_display_name(path: str) -> str:
    """A short name for a library path: the folder, or the file's stem (its folder for
    ``manifest.csv``)."""
    p = Path(path)
    card = read_card(p) if p.is_dir() else None
    if card is not None and card.get("name"):
        return card["name"]
    if not p.is_file():
        return p.name
    return p.parent.name if p.stem == "manifest" else p.stem


def served_roots() -> list[str]:
    """Folders the web server may serve files from by path: only the benchmark exports.

    Everything else the page shows (result tiles, library thumbnails, audit strips) is drawn
    in memory and handed to gradio, which serves its own copy from its cache, so no library
    folder, index, embedding or upload needs to be reachable by path.
    """
    return [str(cache_root() / "benchmarks" / "exports")]


def blocked_roots() -> list[str]:
    """Never served, whatever else allows it: the cache's indexes, embeddings, extracted zips,
    uploads and audits."""
    root = cache_root()
    return [str(root / name) for name in ("indexes", "embeddings", "libraries", "uploads", "audit")]
