"""Apache Airflow provider for streaming ETL and the ML lifecycle."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
