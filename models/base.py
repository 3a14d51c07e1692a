"""The one backbone interface: images and texts in, float32 vectors out."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps

import models.limits as limits
from models.spec import BackboneSpec

Precision = Literal["fp32", "bf16", "fp16"]
ImageInput = Image.Image | str | Path

# Pillow's own guard only refuses at twice its limit; ours is checked from the header first,
# so this one is a backstop set well above it.
Image.MAX_IMAGE_PIXELS = 4 * limits.MAX_IMAGE_PIXELS
# Mirrored margin (pixels) around photos whose feature map is taken at any size: one cell of a
# stride-32 network.
MAP_PAD = 32


class WeightsUnavailable(RuntimeError):
    """A backbone's weights are missing, gated or need a download that cannot happen here."""


class NoTextTower(ValueError):
    """Text was given to a backbone that only embeds images."""


class NoSpatialMap(ValueError):
    """A similarity map was asked of a backbone that has no per-location features."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Return an upright 8-bit RGB copy of any PIL image (EXIF orientation applied).

    Handles the modes that clinical exports and phone photos produce: RGBA/LA/P with
    transparency (composited on white), L, CMYK, 16-bit and float greyscale.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Stretch the actual range to 8 bits: a plain convert("L") clips 16-bit data to white.
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def read_image_bytes(path: str | Path, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file, at most ``max_bytes`` (default ``limits.MAX_IMAGE_BYTES``).

    Opened without blocking and checked on the open descriptor, so a FIFO, a device or a /proc
    file is refused before a single byte is read. Raises ``ValueError`` with a sentence that
    names only the file's name.
    """
    path = Path(path)
    limit = limits.MAX_IMAGE_BYTES if max_bytes is None else max_bytes
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path.name} does not exist.") from err
    except IsADirectoryError as err:
        raise ValueError(f"{path.name} is a folder, not an image file.") from err
    except OSError as err:
        raise ValueError(f"{path.name} cannot be read ({err.strerror or err}).") from err
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file; only image files are read.")
        if info.st_size > limit:
            raise ValueError(
                f"{path.name} is {info.st_size / 1024**2:,.1f} MiB; the limit per image is "
                f"{limit / 1024**2:,.0f} MiB."
            )
        data = f.read(limit + 1)  # the size can grow after fstat
    if len(data) > limit:
        raise ValueError(f"{path.name} is over the {limit / 1024**2:,.0f} MiB limit per image.")
    return data


def check_pixels(size: tuple[int, int], *, name: str) -> None:
    """Refuse an image whose header promises more than ``limits.MAX_IMAGE_PIXELS`` pixels."""
    width, height = size
    if width * height > limits.MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{name} is too large to open safely: {width:,} x {height:,} pixels, over the "
            f"limit of {limits.MAX_IMAGE_PIXELS / 1e6:,.0f} megapixels; downscale it first."
        )


def open_image(source: ImageInput) -> Image.Image:
    """Open a path (or pass through a PIL image) and return upright RGB pixels.

    The pixel count is checked from the header before decoding, and only a bounded number of
    bytes of a regular file is read. Raises ``ValueError`` with a sentence for unreadable,
    non-image or oversized files.
    """
    if isinstance(source, Image.Image):
        check_pixels(source.size, name="The image")
        return to_rgb(source)
    path = Path(source)
    try:
        data = read_image_bytes(path)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from err
    try:
        with Image.open(io.BytesIO(data)) as im:
            check_pixels(im.size, name=path.name)
            im.load()
            return to_rgb(im)
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"{path.name} is too large to open safely (far over the limit of "
            f"{limits.MAX_IMAGE_PIXELS / 1e6:,.0f} megapixels); downscale it first."
        ) from err
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{path.name} is not a readable image ({err}).") from err


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" picks cuda, then mps, then cpu."""
    if device not in (None, "auto"):
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class Backbone:
    """A frozen encoder. Subclasses supply ``preprocess`` and ``_embed_images``.

    ``preprocess`` is a picklable per-image callable (RGB PIL -> tensor) so that data
    loaders can run it in worker processes; ``_embed_images`` runs a stacked batch.
    ``random_weights`` marks an architecture-only model: its vectors are meaningless for
    retrieval and are only good for timing.
    """

    def __init__(
        self,
        spec: BackboneSpec,
        *,
        device: str | torch.device | None = None,
        batch_size: int = 32,
        precision: Precision = "fp32",
        random_weights: bool = False,
    ) -> None:
        self.spec = spec
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.precision = precision
        self.random_weights = random_weights
        self._dim: int | None = None

    # --- what subclasses provide -------------------------------------------------------
    preprocess: Callable[[Image.Image], torch.Tensor]

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        raise NoTextTower(f"{self.spec.name} has no text tower: search it with an image.")

    #: Whether ``_feature_grid`` takes any input size (fully convolutional networks); models with
    #: position embeddings see their native square input only.
    any_input_size: bool = False
    #: The square side a fixed-size model was built for, when it differs from the spec's.
    native_side: int | None = None

    def _feature_grid(self, batch: torch.Tensor) -> torch.Tensor:
        """(n, c, h, w) last-block features of a preprocessed batch."""
        raise NoSpatialMap(f"{self.spec.name} has no spatial feature map to compare locations of.")

    def _map_pixels(self, image: Image.Image, width: int, height: int) -> torch.Tensor:
        """The whole image (never cropped) as this model's input tensor at ``width`` x ``height``.

        The default squashes to the native square and lets ``preprocess`` normalise it: its
        resize and centre crop are then identities, so every pixel of the photo is seen.
        """
        return self.preprocess(image.resize((width, height), Image.Resampling.BICUBIC))

    # --- public API ----------------------------------------------------------------------
    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def has_text(self) -> bool:
        return self.spec.has_text

    @property
    def weights_origin(self) -> str:
        """ "pretrained" or "architecture-only"; every record and caption carries it."""
        return "architecture-only" if self.random_weights else "pretrained"

    @property
    def dim(self) -> int:
        if self._dim is None:
            probe = Image.new("RGB", (self.spec.input_size, self.spec.input_size), (128, 96, 80))
            self._dim = int(self.encode_images([probe]).shape[1])
        return self._dim

    def encode_images(
        self,
        images: Sequence[ImageInput],
        *,
        normalize: bool = True,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embed images (PIL or paths) into an (n, dim) float32 array, rows unit-norm by default."""
        batch_size = batch_size or self.batch_size
        chunks = []
        for start in range(0, len(images), batch_size):
            tensors = [self.preprocess(open_image(im)) for im in images[start : start + batch_size]]
            chunks.append(self.embed_batch(torch.stack(tensors), normalize=normalize))
        if not chunks:
            return np.zeros((0, self._dim or self.spec.dim), dtype=np.float32)
        return np.concatenate(chunks)

    def embed_batch(self, batch: torch.Tensor, *, normalize: bool = True) -> np.ndarray:
        """Embed an already preprocessed (n, ...) batch; used by the parallel extractor."""
        with torch.inference_mode(), self._autocast():
            out = self._embed_images(batch.to(self.device, non_blocking=True))
        out = out.float().cpu().numpy().astype(np.float32, copy=False)
        self._dim = out.shape[1]
        return l2_normalize(out) if normalize else out

    def encode_texts(self, texts: Sequence[str], *, normalize: bool = True) -> np.ndarray:
        """Embed text prompts; raises ``NoTextTower`` for image-only backbones."""
        if not self.has_text:
            raise NoTextTower(f"{self.spec.name} has no text tower: search it with an image.")
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self._dim or self.spec.dim), dtype=np.float32)
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            with torch.inference_mode(), self._autocast():
                out = self._embed_texts(texts[start : start + self.batch_size])
            chunks.append(out.float().cpu().numpy().astype(np.float32, copy=False))
        out = np.concatenate(chunks)
        return l2_normalize(out) if normalize else out

    def feature_map(self, image: ImageInput, *, side: int | None = None) -> np.ndarray:
        """(h, w, c) float32 features of every location of the whole image, for similarity maps.

        ``side`` is the shorter image side in pixels for backbones with ``any_input_size``
        (aspect ratio kept); the others always see their native square. Raises ``NoSpatialMap``
        for backbones without per-location features.
        """
        image = open_image(image)
        pad = 0
        if self.any_input_size:
            side = side or self.spec.input_size
            scale = side / min(image.size)
            width, height = (max(round(v * scale), 32) for v in image.size)
            pad = MAP_PAD
        else:
            width = height = self.native_side or self.spec.input_size
        batch = self._map_pixels(image, width, height)[None]
        if pad:
            # Mirrored margins: with zero padding the edge locations of every photo look alike
            # and would match each other instead of the content.
            batch = torch.nn.functional.pad(batch, (pad, pad, pad, pad), mode="reflect")
        with torch.inference_mode(), self._autocast():
            grid = self._feature_grid(batch.to(self.device))[0]
        if pad:
            rows = round(pad * grid.shape[1] / batch.shape[2])
            cols = round(pad * grid.shape[2] / batch.shape[3])
            grid = grid[:, rows : grid.shape[1] - rows, cols : grid.shape[2] - cols]
        return grid.float().permute(1, 2, 0).cpu().numpy().astype(np.float32, copy=False)

    def _autocast(self) -> contextlib.AbstractContextManager:
        # Half precision only on accelerators: CPU bf16 autocast is slower on most x86 parts.
        if self.precision == "fp32" or self.device.type == "cpu":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(key={self.key!r}, device={self.device.type}, "
            f"weights={self.weights_origin})"
        )
