"""Signatures with the library's overlays masked: keypoints on a mark dropped, windows cut
from the photo with its marks painted over."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from data_index.audit.features import ImageSignature, window_vectors


def _keep(points: np.ndarray, mask: np.ndarray, *, mirrored: bool) -> np.ndarray:
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    h, w = mask.shape
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, h - 1)
    if mirrored:  # mirror keypoints sit in the mirrored frame
        xs = (w - 1) - xs
    return mask[ys, xs]


def masked_signature(sig: ImageSignature, mask: np.ndarray | None) -> ImageSignature:
    """``sig`` without the keypoints that fall on an overlay, carrying the mask for the
    correlation test (the order, strongest first, is kept)."""
    if mask is None:
        return sig
    keep = _keep(sig.keypoints, mask, mirrored=False)
    full_vector, windows = sig.full_vector, sig.window_vectors
    if sig.square is not None:
        # The window vectors rank candidates: a shared frame or logo would make every
        # photo carrying it look alike, so they are cut from the photo with the marks
        # painted over by their surroundings.
        side = sig.square.shape[0]
        marks = cv2.resize((~mask).astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST)
        filled = cv2.inpaint(sig.square, marks, 3, cv2.INPAINT_TELEA)
        full_vector, windows = window_vectors(filled.astype(np.float32))
    keep_m = _keep(sig.mirror_keypoints, mask, mirrored=True)

    def rows(desc, k):
        return desc[k] if desc is not None and k.any() else None

    return dataclasses.replace(
        sig,
        keypoints=sig.keypoints[keep],
        descriptors=rows(sig.descriptors, keep),
        mirror_keypoints=sig.mirror_keypoints[keep_m],
        mirror_descriptors=rows(sig.mirror_descriptors, keep_m),
        content=mask,
        full_vector=full_vector,
        window_vectors=windows,
    )
