"""Space rehearsal: fresh venv from requirements.txt, app.py run as on a Space, photo searches.

Steps, each timed: (1) ``python -m venv`` + ``pip install -r requirements.txt`` and nothing
else; (2) a seeded sample of a shared dataset written as a Hub-layout folder
(``data/train-*.parquet``); (3) with the fresh venv, both backbones' indexes of it built and
exported as a bundle (xception-ham10000 fetches its sklesion wheel here, as a Space would);
(4) ``python app.py`` with no arguments, ``GRADIO_SERVER_NAME=0.0.0.0``, port 7860,
``SPACE_ID`` set and ``DERMSEARCH_LIBRARY`` on the bundle, its cache and weights folders empty;
(5) one photo search per backbone through ``gradio_client``. It fails (exit 1) when any step
fails, a search returns no cases, or the app embedded any library image.

    python -m benchmarks.perf.space_rehearsal [--library ../shared/datasets/mpox-msld]

Slow (minutes: the venv build dominates), so not part of ``make test``. Figures go to
``benchmarks/results/space_rehearsal.json`` and stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.perf.app_process import stop_process_group, wait_until_serving
from benchmarks.timing import machine_description
from data_index.locations import REPO_ROOT

BACKBONES = ("efficientnet-lite0", "xception-ham10000")
SPACE_PORT = 7860
RESULTS = REPO_ROOT / "benchmarks" / "results" / "space_rehearsal.json"
K = 5


def _timed(cmd: list[str], *, env: dict[str, str], log: Path, timeout_s: float) -> float:
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(
            cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s
        )
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd[:4])} ...` failed ({done.returncode}); see {log}.")
    return time.perf_counter() - started


def write_hub_folder(library: Path, out: Path, *, max_cases: int, seed: int) -> list[Path]:
    """A seeded sample of a manifest or folder library in the Hub's parquet layout (image
    struct, ClassLabel, huggingface features metadata); returns the sampled image paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from data_index import CaseLibrary

    cases = CaseLibrary.load(library).cases
    cases = cases.sample(n=min(max_cases, len(cases)), random_state=seed).sort_values("key")
    names = sorted(cases["label"].unique())
    images = [{"bytes": Path(p).read_bytes(), "path": Path(p).name} for p in cases["path"]]
    features = {
        "image": {"_type": "Image"},
        "label": {"names": names, "_type": "ClassLabel"},
        "case_id": {"dtype": "string", "_type": "Value"},
    }
    table = pa.table(
        {
            "image": pa.array(
                images, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])
            ),
            "label": pa.array([names.index(v) for v in cases["label"]], pa.int64()),
            "case_id": pa.array(cases["case_id"].astype(str).tolist(), pa.string()),
        }
    ).replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    (out / "data").mkdir(parents=True)
    pq.write_table(table, out / "data" / "train-00000-of-00001.parquet")
    for extra in ("README.md", "LICENSE", "LICENSE.txt"):
        if (library / extra).is_file():
            shutil.copy2(library / extra, out / extra)
    return [Path(p) for p in cases["path"]]


def _port() -> int:
    """7860 as on a Space, unless something here already listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", SPACE_PORT))
            return SPACE_PORT
        except OSError:
            sock.bind(("0.0.0.0", 0))
            return int(sock.getsockname()[1])


def _search(url: str, backbone: str, photo: Path) -> tuple[float, int, str]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    # The app names libraries by id (it refuses server paths): the one it opened on is the
    # library box's default.
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = {p["parameter_name"]: p for p in endpoint["/search_photo"]["parameters"]}
    library = params["library"]["parameter_default"]
    started = time.perf_counter()
    outputs = client.predict(
        handle_file(str(photo)), library, backbone, K, "cosine", "", api_name="/search_photo"
    )
    seconds = time.perf_counter() - started
    # Found by type, not position, so outputs the endpoint gains later do not break the check.
    gallery = next((o for o in outputs if isinstance(o, list)), None)
    summary = " ".join(o for o in outputs if isinstance(o, str))
    return seconds, len(gallery or []), summary


def _files(folder: Path) -> int:
    return sum(p.is_file() for p in folder.rglob("*")) if folder.exists() else 0


def rehearse(*, library: Path, work: Path, max_cases: int, seed: int) -> dict:
    log = work / "rehearsal.log"
    venv = work / "venv"
    python = venv / "bin" / "python"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DERMSEARCH_", "HF_"))}
    base_env.pop("VIRTUAL_ENV", None)
    figures: dict = {"library": library.name, "sample": max_cases, "seed": seed}

    figures["venv_build_s"] = _timed(
        [sys.executable, "-m", "venv", str(venv)], env=base_env, log=log, timeout_s=600
    )
    figures["venv_build_s"] += _timed(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
         str(REPO_ROOT / "requirements.txt")],
        env=base_env, log=log, timeout_s=3600,
    )  # fmt: skip
    print(f"venv from requirements.txt: {figures['venv_build_s']:.0f} s", flush=True)

    hub = work / f"{library.name}-hub"
    photos = write_hub_folder(library, hub, max_cases=max_cases, seed=seed)
    build_env = {
        **base_env,
        "DERMSEARCH_CACHE": str(work / "build-cache"),
        "DERMSEARCH_WEIGHTS": str(work / "build-weights"),
    }
    figures["index_build_s"] = {}
    for key in BACKBONES:
        figures["index_build_s"][key] = _timed(
            [str(python), "-m", "data_index", "build", "--library", str(hub), "--backbone", key,
             "--out", str(work / "indexes" / key)],
            env=build_env, log=log, timeout_s=3600,
        )  # fmt: skip
    bundle = work / "bundle"
    figures["export_s"] = _timed(
        [str(python), "-m", "data_index", "export", *[
            a for key in BACKBONES for a in ("--index", str(work / "indexes" / key))
        ], "--out", str(bundle)],
        env=build_env, log=log, timeout_s=600,
    )  # fmt: skip
    print(f"indexes {figures['index_build_s']}, bundle {figures['export_s']:.0f} s", flush=True)

    port = _port()
    app_cache = work / "app-cache"
    app_env = {
        **base_env,
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": str(port),
        "SPACE_ID": "rehearsal/dermsearch",
        "DERMSEARCH_LIBRARY": str(bundle),
        "DERMSEARCH_CACHE": str(app_cache),
        "DERMSEARCH_WEIGHTS": str(work / "app-weights"),  # empty: the wheel is fetched again
        "DERMSEARCH_SHARED": str(work / "no-shared"),  # a Space has no ../shared
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    figures["port"] = port
    with (work / "app.log").open("w") as app_log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(python), "app.py"],
            cwd=REPO_ROOT,
            env=app_env,
            stdout=app_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_until_serving(url, proc, timeout_s=600)
            figures["startup_s"] = time.perf_counter() - started
            print(f"app.py serving after {figures['startup_s']:.0f} s", flush=True)
            figures["first_search"] = {}
            for key in BACKBONES:
                seconds, count, summary = _search(url, key, photos[0])
                figures["first_search"][key] = {"seconds": seconds, "results": count}
                print(f"first photo search, {key}: {seconds:.1f} s, {count} cases", flush=True)
                if count != K:
                    raise RuntimeError(f"{key}: expected {K} cases, got {count}: {summary[:300]}")
        finally:
            stop_process_group(proc)
    figures["library_images_embedded_by_app"] = _files(app_cache / "embeddings")
    if figures["library_images_embedded_by_app"]:
        raise RuntimeError("The app embedded library images: the bundle's indexes were not used.")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.perf.space_rehearsal",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument(
        "--library",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "datasets" / "mpox-msld",
        help="a shared dataset to sample (default ../shared/datasets/mpox-msld)",
    )
    parser.add_argument("--max-cases", type=int, default=60, help="cases in the sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (venv, logs)")
    parser.add_argument("--no-save", action="store_true", help=f"do not write {RESULTS.name}")
    args = parser.parse_args(argv)
    if not args.library.is_dir():
        print(f"error: no library at {args.library}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="space-rehearsal-"))
    print(f"work folder: {work}", flush=True)
    try:
        figures = rehearse(
            library=args.library, work=work, max_cases=args.max_cases, seed=args.seed
        )
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as err:
        print(f"rehearsal FAILED: {err}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    machine = machine_description()
    figures |= {"python": machine["python"], "cpus": machine["cpu_count"]}
    if not args.no_save:
        RESULTS.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    out = io.StringIO()
    json.dump(figures, out, indent=2)
    print(out.getvalue())
    print("rehearsal passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
