"""Bootstrap intervals over cases, and paired comparisons of two backbones on the same queries.

Queries of one case (several photos of one lesion) are not independent, so every interval here
resamples cases, not images: a resample draws as many cases as there are, with replacement,
and each drawn case brings all its queries. A resample is a vector of case weights (how often
each case was drawn), so a metric that is a mean of per-query values is a ratio of weighted
sums and 1,000 resamples cost two matrix products. Percentile intervals, seeded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

N_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def case_weights(
    groups: np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(weights (n_resamples, n_cases), case code per query): how often each case was drawn."""
    codes = np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)
    n_cases = int(codes.max()) + 1 if codes.size else 0
    if n_cases == 0:
        raise ValueError("a bootstrap needs at least one query.")
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_cases, np.full(n_cases, 1.0 / n_cases), size=n_resamples)
    return weights.astype(float), codes


def _per_case_sums(values: np.ndarray, codes: np.ndarray, n_cases: int):
    """Sums of the defined (non-NaN) values and their counts, per case."""
    defined = ~np.isnan(values)
    sums = np.bincount(codes[defined], weights=values[defined], minlength=n_cases)
    counts = np.bincount(codes[defined], minlength=n_cases).astype(float)
    return sums, counts


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def mean_samples(values: np.ndarray, weights: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The NaN-skipping mean of per-query values under each resample: (n_resamples,)."""
    sums, counts = _per_case_sums(np.asarray(values, dtype=float), codes, weights.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ sums) / (weights @ counts)


def macro_samples(
    values: np.ndarray, labels: np.ndarray, weights: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """Mean over classes of the per-class means under each resample (a class absent from a
    resample is left out of that resample's mean)."""
    values = np.asarray(values, dtype=float)
    labels = np.asarray(labels)
    per_class = []
    for label in np.unique(labels):
        inside = np.where(labels == label, values, np.nan)
        per_class.append(mean_samples(inside, weights, codes))
    stacked = np.stack(per_class, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no class drawn
        return np.nanmean(stacked, axis=1)


@dataclass(frozen=True)
class Bootstrap:
    """Case resamples shared by every metric of one run, so their intervals are comparable."""

    weights: np.ndarray
    codes: np.ndarray
    level: float = LEVEL

    @classmethod
    def over(cls, groups: np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = SEED):
        weights, codes = case_weights(groups, n_resamples=n_resamples, seed=seed)
        return cls(weights=weights, codes=codes)

    @property
    def n_resamples(self) -> int:
        return int(self.weights.shape[0])

    def mean(self, values: np.ndarray) -> tuple[float, float]:
        """Interval of the mean of per-query values."""
        return _percentiles(mean_samples(values, self.weights, self.codes), self.level)

    def macro(self, values: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """Interval of the class-balanced mean of per-query values."""
        return _percentiles(macro_samples(values, labels, self.weights, self.codes), self.level)

    def macro_f1(
        self, true: np.ndarray, predicted: np.ndarray, classes: np.ndarray
    ) -> tuple[float, float]:
        """Interval of macro F1 over the classes present in ``true``, from weighted confusion
        counts (one pass per class, not one sklearn call per resample)."""
        true, predicted = np.asarray(true), np.asarray(predicted)
        f1s = []
        n_cases = self.weights.shape[1]
        for label in np.asarray(classes):
            if not np.any(true == label):
                continue
            tp = np.bincount(
                self.codes, weights=(true == label) & (predicted == label), minlength=n_cases
            )
            fp = np.bincount(
                self.codes, weights=(true != label) & (predicted == label), minlength=n_cases
            )
            fn = np.bincount(
                self.codes, weights=(true == label) & (predicted != label), minlength=n_cases
            )
            tp, fp, fn = self.weights @ tp, self.weights @ fp, self.weights @ fn
            with np.errstate(invalid="ignore", divide="ignore"):
                f1 = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
            f1s.append(np.where(tp + fn > 0, f1, np.nan))  # class drawn in this resample
        if not f1s:
            return float("nan"), float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            samples = np.nanmean(np.stack(f1s, axis=1), axis=1)
        return _percentiles(samples, self.level)


@dataclass(frozen=True)
class PairedDifference:
    """Backbone a minus backbone b on the same queries."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float  # McNemar's exact test for 0/1 outcomes, else the bootstrap's two-sided p
    test: str
    n_queries: int
    n_a_only: int | None = None  # queries only a got right (0/1 outcomes only)
    n_b_only: int | None = None

    @property
    def excludes_zero(self) -> bool:
        return bool(self.ci_low > 0 or self.ci_high < 0)


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> tuple[float, int, int]:
    """McNemar's exact (binomial) two-sided p-value on the discordant pairs: (p, a only, b only)."""
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if a_only + b_only == 0:
        return 1.0, 0, 0
    return float(binomtest(a_only, a_only + b_only, 0.5).pvalue), a_only, b_only


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    *,
    groups: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> PairedDifference:
    """Mean of a minus mean of b, with a case-resampled interval of that difference.

    ``a`` and ``b`` hold one value per query, the same queries in the same order. When both
    are 0/1 outcomes (a hit or not), the p-value is McNemar's exact test; otherwise it is the
    bootstrap's two-sided share of resampled differences on the other side of 0.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be 1-D and aligned, got {a.shape} and {b.shape}.")
    both = ~np.isnan(a) & ~np.isnan(b)
    a, b, groups = a[both], b[both], np.asarray(groups)[both]
    boot = Bootstrap.over(groups, n_resamples=n_resamples, seed=seed)
    samples = mean_samples(a - b, boot.weights, boot.codes)
    low, high = _percentiles(samples, boot.level)
    diff = float(np.mean(a - b))
    binary = np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()
    if binary:
        p, a_only, b_only = mcnemar_exact(a == 1, b == 1)
        return PairedDifference(diff, low, high, p, "McNemar exact", len(a), a_only, b_only)
    finite = samples[np.isfinite(samples)]
    # (1 + count) / (1 + resamples): a bootstrap p-value is never exactly 0
    tail = min(np.sum(finite <= 0), np.sum(finite >= 0))
    p = min(1.0, 2 * (1 + tail) / (1 + finite.size)) if finite.size else 1.0
    return PairedDifference(diff, low, high, float(p), "paired bootstrap", len(a))
