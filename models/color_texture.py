"""A classical content-based retrieval baseline: colour histograms plus texture, no learned weights.

Why these descriptors: dermatologists describe lesions by colour (red, brown, blue-grey, white
scale) and surface pattern (scaly, reticular, smooth). The features follow that split:

- colour: a joint CIELAB histogram (4 x 8 x 8 bins) of the whole image and one of its central
  half, since the lesion usually sits in the middle of a clinical photo. CIELAB is roughly
  perceptually uniform, so equal bin widths mean roughly equal visible differences; L* gets few
  bins so lighting matters less than hue. Histograms are square-rooted (Hellinger kernel), which
  makes cosine similarity behave like the Bhattacharyya coefficient.
- texture: rotation-invariant uniform local binary patterns (8 neighbours, radius 1) at two
  scales, and Gabor energies (mean and spread of the filter magnitude) at 4 orientations and
  3 wavelengths (6, 12 and 24 px at 224 px, computed on a half-size image for speed).

Each block is L2-normalised before concatenation so no block dominates by size, then the whole
vector is normalised. It is a baseline: it knows nothing of shape or of what a lesion is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.base import Backbone, NoSpatialMap

SIZE = 224
LAB_BINS = (4, 8, 8)
LBP_SCALES = (1, 2)  # image downscale factors
GABOR_WAVELENGTHS = (3.0, 6.0, 12.0)  # pixels of the half-size grey image
GABOR_ORIENTATIONS = 4
DIM = 2 * math.prod(LAB_BINS) + 10 * len(LBP_SCALES) + 2 * len(GABOR_WAVELENGTHS) * 4


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (h, w, 3) -> CIELAB (D65), float32."""
    c = rgb.astype(np.float32) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array(
        [[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]],
        dtype=np.float32,
    )
    xyz /= np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def lab_histogram(lab: np.ndarray) -> np.ndarray:
    ranges = ((0.0, 100.0), (-60.0, 80.0), (-40.0, 80.0))  # covers skin and lesion colours
    hist, _ = np.histogramdd(lab.reshape(-1, 3), bins=LAB_BINS, range=ranges)
    return np.sqrt(hist.ravel() / max(hist.sum(), 1.0))


def lbp_histogram(gray: np.ndarray) -> np.ndarray:
    """Rotation-invariant uniform LBP (P=8, R=1): 9 uniform codes + 1 'other' bin."""
    centre = gray[1:-1, 1:-1]
    h, w = centre.shape
    offsets = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
    bits = np.stack(
        [gray[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] >= centre for dy, dx in offsets]
    ).astype(np.int8)
    ones = bits.sum(axis=0)
    transitions = np.abs(np.diff(np.concatenate([bits, bits[:1]]), axis=0)).sum(axis=0)
    codes = np.where(transitions <= 2, ones, 9)
    hist = np.bincount(codes.ravel(), minlength=10).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def _gabor_bank() -> torch.Tensor:
    """Even/odd Gabor pairs, zero-mean, zero-padded to the largest kernel's size."""
    largest = math.ceil(2.5 * 0.56 * max(GABOR_WAVELENGTHS))
    kernels = []
    for wavelength in GABOR_WAVELENGTHS:
        sigma = 0.56 * wavelength  # about one octave of bandwidth
        half = math.ceil(2.5 * sigma)
        pad = (largest - half,) * 4
        y, x = torch.meshgrid(
            torch.arange(-half, half + 1, dtype=torch.float32),
            torch.arange(-half, half + 1, dtype=torch.float32),
            indexing="ij",
        )
        for k in range(GABOR_ORIENTATIONS):
            theta = math.pi * k / GABOR_ORIENTATIONS
            xr = x * math.cos(theta) + y * math.sin(theta)
            envelope = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
            for phase in (0.0, math.pi / 2):  # even and odd parts give the magnitude
                kern = envelope * torch.cos(2 * math.pi * xr / wavelength + phase)
                kern = kern - kern.mean()
                kernels.append(F.pad(kern / kern.abs().sum(), pad))
    return torch.stack(kernels)[:, None]


_GABOR = _gabor_bank()


def gabor_energies(gray: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(gray.astype(np.float32))[None, None]
    x = (x - x.mean()) / (x.std() + 1e-6)
    pad = _GABOR.shape[-1] // 2
    out = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), _GABOR)[0]
    magnitude = torch.sqrt(out[0::2] ** 2 + out[1::2] ** 2)
    return torch.cat([magnitude.mean(dim=(1, 2)), magnitude.std(dim=(1, 2))]).numpy()


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


class ColorTextureFeatures:
    """Picklable preprocess: RGB PIL image -> the full descriptor (work done in loader workers)."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        rgb = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
        lab = srgb_to_lab(rgb)
        q = SIZE // 4
        gray = lab[..., 0]
        lbp = [lbp_histogram(gray[::s, ::s]) for s in LBP_SCALES]
        blocks = [
            lab_histogram(lab),
            lab_histogram(lab[q:-q, q:-q]),
            np.concatenate(lbp),
            gabor_energies(gray.reshape(SIZE // 2, 2, SIZE // 2, 2).mean(axis=(1, 3))),
        ]
        return torch.from_numpy(np.concatenate([_unit(b) for b in blocks]).astype(np.float32))


class ColorTextureBackbone(Backbone):
    """Hand-made descriptor behind the common interface (no weights, no text tower)."""

    def __init__(self, spec, **kwargs) -> None:
        kwargs["device"] = "cpu"  # numpy work: an accelerator would only add copies
        super().__init__(spec, **kwargs)
        self.preprocess = ColorTextureFeatures()

    def _embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        return batch

    def _feature_grid(self, batch: torch.Tensor) -> torch.Tensor:
        # Histograms of the whole image and of its centre have no locations to point at; a heat
        # map drawn from two fixed regions would look like an explanation and be none.
        raise NoSpatialMap(
            f"{self.spec.name} describes whole-image and central colour and texture statistics, "
            "so it has no per-location map to show."
        )


def load_color_texture(spec, *, random_weights: bool, **kwargs) -> ColorTextureBackbone:
    # There are no weights to randomise: the architecture-only flag changes nothing here.
    return ColorTextureBackbone(spec, **kwargs)
