"""A CPU fast path: a backbone's image tower exported once to ONNX and run by ONNX Runtime or
OpenVINO, behind the same ``Backbone`` interface (text towers stay in PyTorch).

The graph is exported from the eager model itself, so any backbone whose ``_embed_images`` is
a traceable tensor function (timm, open_clip, transformers and the hand-made ones) gets it.
Exported graphs are cached as ``<cache>/onnx/<backbone>-<weights hash>.onnx``: new weights,
a new graph; the same weights on the next start, no export.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import uuid
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from models.base import Backbone

Runtime = Literal["torch", "onnx", "openvino"]
RUNTIMES: tuple[str, ...] = ("torch", "onnx", "openvino")
RUNTIME_HELP = (
    "torch: eager PyTorch (any device); onnx: ONNX Runtime on the CPU; openvino: OpenVINO on "
    "the CPU (both run the same exported graph)"
)
OPSET = 17
# The same root as data_index.locations.cache_root; models sits below data_index, so the rule
# is restated here rather than imported.
_CACHE_ENV = "DERMSEARCH_CACHE"
_REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_runtime(name: str | None) -> str:
    """A runtime name from the CLI, app or code; unknown names get the list of valid ones."""
    text = "torch" if name is None else str(name).strip().lower()
    if text not in RUNTIMES:
        raise ValueError(f"Unknown runtime '{name}'. Valid runtimes: {', '.join(RUNTIMES)}.")
    return text


def graph_cache_dir() -> Path:
    override = os.environ.get(_CACHE_ENV, "").strip()
    root = Path(override).expanduser().resolve() if override else _REPO_ROOT / "cache"
    return root / "onnx"


def _modules(backbone: Backbone) -> dict[str, torch.nn.Module]:
    return {n: m for n, m in sorted(vars(backbone).items()) if isinstance(m, torch.nn.Module)}


def _source_files(backbone: Backbone) -> list[Path]:
    """The files defining the backbone's class and every layer class it runs: a change to the
    forward code there must not reuse a graph traced from the old code."""
    names = {type(backbone).__module__}
    for module in _modules(backbone).values():
        names.update(type(m).__module__ for m in module.modules())
    files = {getattr(sys.modules.get(n), "__file__", None) for n in names}
    return sorted(Path(f) for f in files if f)


def weights_hash(backbone: Backbone) -> str:
    """sha256 over every tensor of the backbone's modules (names, dtypes, shapes, values) and
    the source of the code that runs them."""
    h = hashlib.sha256(f"{backbone.key}\n{torch.__version__}\nopset{OPSET}\n".encode())
    for path in _source_files(backbone):
        h.update(path.read_bytes())
    for name, module in _modules(backbone).items():
        for tensor_name, tensor in module.state_dict().items():
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}.{tensor_name}:{t.dtype}:{tuple(t.shape)}\n".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class _ImageTower(torch.nn.Module):
    """The eager backbone's ``_embed_images`` as a module, its networks registered so the
    exporter sees their weights as parameters."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone_embed = backbone._embed_images
        for name, module in _modules(backbone).items():
            self.add_module(name, module)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.backbone_embed(pixels)


def example_batch(backbone: Backbone, n: int = 2) -> torch.Tensor:
    """``n`` preprocessed probe images: the input shape the exported graph is traced with."""
    size = backbone.spec.input_size or 224
    probe = Image.new("RGB", (size, size), (150, 110, 90))
    return torch.stack([backbone.preprocess(probe)] * n).float()


def export_graph(backbone: Backbone, *, graph_dir: Path | None = None) -> Path:
    """The cached ONNX graph of ``backbone``'s image tower, exported now if absent."""
    if backbone.device.type != "cpu":
        raise ValueError("Export from a backbone loaded on the CPU (device='cpu').")
    folder = graph_dir or graph_cache_dir()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", backbone.key).strip("_")
    path = folder / f"{slug}-{weights_hash(backbone)[:16]}.onnx"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
    tower = _ImageTower(backbone).eval()
    try:
        # Grad stays on while tracing: with it off, nn.MultiheadAttention takes its fused
        # fast path, an operator ONNX has no equivalent for (open_clip's ViTs use it).
        with torch.inference_mode(False), torch.enable_grad():
            # The TorchScript exporter: it needs no extra packages and handles every tower here.
            torch.onnx.export(
                tower,
                (example_batch(backbone),),
                str(tmp),
                dynamo=False,
                input_names=["pixels"],
                output_names=["features"],
                dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
                opset_version=OPSET,
                do_constant_folding=True,
            )
        os.replace(tmp, path)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"Backbone '{backbone.key}' could not be exported to ONNX ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); use runtime 'torch'."
        ) from err
    return path


def quantised_graph(path: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of a graph's weights, cached beside it. It
    trades some neighbour agreement for speed: benchmarks.perf.runtimes measures both."""
    target = path.with_name(f"{path.stem}-int8.onnx")
    if not target.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = path.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QUInt8)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


class _OnnxRuntimeSession:
    def __init__(self, path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"pixels": pixels})[0]


class _OpenVinoSession:
    def __init__(self, path: Path, *, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        # Compiled blobs are cached next to the graph, so a restart skips compilation.
        core.set_property({"CACHE_DIR": str(path.parent / "openvino")})
        self._compiled = core.compile_model(
            str(path),
            "CPU",
            # f32 pinned: on CPUs with bf16 units OpenVINO would otherwise pick bf16, whose
            # embeddings drift to cosine ~0.9997 from the eager model's.
            {
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",
            },
        )
        # One compiled model's default request is not safe to share between threads (the app
        # serves requests from a thread pool).
        self._lock = threading.Lock()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        with self._lock:
            return np.array(self._compiled(pixels)[0], dtype=np.float32, copy=True)


class ExportedBackbone(Backbone):
    """An eager backbone's image tower run from its exported graph on the CPU; preprocessing
    and the text tower are the eager backbone's own."""

    def __init__(
        self,
        eager: Backbone,
        *,
        runtime: Runtime,
        graph_dir: Path | None = None,
        threads: int | None = None,
        int8: bool = False,
    ) -> None:
        runtime = parse_runtime(runtime)
        if runtime == "torch":
            raise ValueError("Runtime 'torch' is the eager backbone itself; nothing to export.")
        if int8 and runtime != "onnx":
            raise ValueError("Dynamic int8 quantisation is offered with runtime 'onnx' only.")
        super().__init__(
            eager.spec,
            device="cpu",
            batch_size=eager.batch_size,
            random_weights=eager.random_weights,
        )
        self.eager = eager
        self.runtime = runtime
        self.preprocess = eager.preprocess
        self.graph_path = export_graph(eager, graph_dir=graph_dir)
        if int8:
            self.graph_path = quantised_graph(self.graph_path)
        threads = threads or torch.get_num_threads()
        session = _OnnxRuntimeSession if runtime == "onnx" else _OpenVinoSession
        self._run = session(self.graph_path, threads=threads)

    @property
    def has_text(self) -> bool:
        return self.eager.has_text

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        pixels = np.ascontiguousarray(batch.detach().cpu().float().numpy())
        return torch.from_numpy(self._run(pixels))

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.eager._embed_texts(texts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(key={self.key!r}, runtime={self.runtime}, "
            f"weights={self.weights_origin})"
        )
