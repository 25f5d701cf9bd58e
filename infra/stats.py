"""Percentiles, one definition for status reports and benchmarks alike."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0 < q < 100) of ``values``, interpolated between the two
    nearest samples (``statistics.quantiles``' inclusive method); None for no samples."""
    data = list(values)
    if not 0 < q < 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    if len(data) < 2:
        return data[0] if data else None
    cuts = statistics.quantiles(data, n=1000, method="inclusive")
    return cuts[round(q * 10) - 1]
