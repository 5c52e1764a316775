"""The profiler's options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass
class ProfileOptions:
    """How much the profiler keeps and when it warns (the defaults hold 1M x 25 under 300 MB)."""

    sample_size: int = 50_000
    bins: int = 20
    top_k: int = 10
    seed: int = 0
    distinct_exact_limit: int = 65_536
    distinct_sketch_size: int = 4_096
    category_limit: int = 10_000
    duplicate_hash_limit: int = 2_000_000
    outliers: Mapping[str, Any] = field(default_factory=lambda: {"method": "iqr", "factor": 1.5})
    max_correlation_columns: int = 40
    max_association_categories: int = 50
    target_bins: int = 100
    high_cardinality: int = 50
    many_missing: float = 0.2
    heavy_skew: float = 2.0
    leakage: float = 0.95
