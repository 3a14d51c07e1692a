"""Start-up settings (command line and environment) and the list of libraries to choose from."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_index import cache_root
from data_index.locations import REPO_ROOT
from models.runtime_onnx import RUNTIME_HELP, RUNTIMES, parse_runtime

DEFAULT_BACKBONE = "efficientnet-lite0"
DEFAULT_PORT = 7860
LIBRARY_SUFFIXES = (".zip", ".csv", ".parquet")


@dataclass(frozen=True)
class AppConfig:
    """What the app starts with; ``library`` None opens it on the Library tab."""

    library: str | None
    backbone: str
    host: str
    port: int
    torch_threads: int | None = None  # None leaves torch's default
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
        help="case library: folder of class folders, manifest CSV/Parquet, or zip "
        "(env DERMSEARCH_LIBRARY)",
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
        "--runtime",
        choices=RUNTIMES,
        default=env.get("DERMSEARCH_RUNTIME") or "torch",
        help=f"embedding runtime (env DERMSEARCH_RUNTIME; default torch): {RUNTIME_HELP}",
    )
    args, _unknown = parser.parse_known_args(list(argv or []))
    library = str(Path(args.library).expanduser().resolve()) if args.library else None
    return AppConfig(
        library=library,
        backbone=args.backbone,
        host=args.host,
        port=args.port,
        torch_threads=max(1, args.torch_threads),
        runtime=parse_runtime(args.runtime),
    )


def shared_datasets_dir() -> Path:
    """``../shared/datasets`` beside the checkout (``DERMSEARCH_SHARED`` moves ``../shared``)."""
    shared = os.environ.get("DERMSEARCH_SHARED")
    return (Path(shared).expanduser() if shared else REPO_ROOT.parent / "shared") / "datasets"


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


def library_choices(*, extra: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(label, path) for every library the app can offer: shared datasets, ``DERMSEARCH_LIBRARIES``
    (paths separated by ``os.pathsep``), uploads, and ``extra`` (e.g. the start-up library)."""
    found: list[tuple[str, Path]] = []
    shared = shared_datasets_dir()
    if shared.is_dir():
        found += [("shared", p) for p in sorted(shared.iterdir()) if _is_library(p)]
    for raw in os.environ.get("DERMSEARCH_LIBRARIES", "").split(os.pathsep):
        if raw.strip() and _is_library(Path(raw.strip()).expanduser()):
            found.append(("configured", Path(raw.strip()).expanduser()))
    uploads = uploads_dir()
    if uploads.is_dir():
        found += [("uploaded", p) for p in sorted(uploads.iterdir()) if _is_library(p)]
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
    if not p.is_file():
        return p.name
    return p.parent.name if p.stem == "manifest" else p.stem


def served_roots(*, libraries: Sequence[str]) -> list[str]:
    """Folders the web server may serve files from: the libraries' folders and the cache root."""
    roots = {str(cache_root())}
    for lib in libraries:
        p = Path(lib)
        roots.add(str(p.parent if p.is_file() else p))
    return sorted(roots)
