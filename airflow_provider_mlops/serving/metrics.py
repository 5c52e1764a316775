"""Prometheus text exposition, hand-written: a few counters and one histogram need no dependency."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Thread-safe counters: requests by endpoint and status, latency, rows, reloads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)
        self.buckets = [0] * len(BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.rows = 0
        self.reloads: dict[str, int] = defaultdict(int)

    def observe(self, path: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(path, status)] += 1
            if status >= 400:
                self.errors[path] += 1
            if path == "/invocations":
                self.latency_sum += seconds
                self.latency_count += 1
                for i, bound in enumerate(BUCKETS):
                    if seconds <= bound:
                        self.buckets[i] += 1
                        break

    def add_rows(self, rows: int) -> None:
        with self._lock:
            self.rows += rows

    def reloaded(self, ok: bool) -> None:
        with self._lock:
            self.reloads["ok" if ok else "failed"] += 1

    def render(self, model: dict[str, str]) -> str:
        with self._lock:
            lines = [
                "# HELP mlops_serve_requests_total HTTP requests by endpoint and status code.",
                "# TYPE mlops_serve_requests_total counter",
            ]
            for (path, status), count in sorted(self.requests.items()):
                lines.append(
                    f'mlops_serve_requests_total{{endpoint="{_escape(path)}",code="{status}"}} {count}'
                )
            lines += [
                "# HELP mlops_serve_errors_total HTTP requests answered with a 4xx or 5xx status.",
                "# TYPE mlops_serve_errors_total counter",
            ]
            for path, count in sorted(self.errors.items()):
                lines.append(f'mlops_serve_errors_total{{endpoint="{_escape(path)}"}} {count}')
            lines += [
                "# HELP mlops_serve_request_duration_seconds Latency of /invocations.",
                "# TYPE mlops_serve_request_duration_seconds histogram",
            ]
            cumulative = 0
            for bound, count in zip(BUCKETS, self.buckets, strict=True):
                cumulative += count
                lines.append(f'mlops_serve_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
            lines += [
                f'mlops_serve_request_duration_seconds_bucket{{le="+Inf"}} {self.latency_count}',
                f"mlops_serve_request_duration_seconds_sum {self.latency_sum:.6f}",
                f"mlops_serve_request_duration_seconds_count {self.latency_count}",
                "# HELP mlops_serve_prediction_rows_total Rows scored.",
                "# TYPE mlops_serve_prediction_rows_total counter",
                f"mlops_serve_prediction_rows_total {self.rows}",
                "# HELP mlops_serve_reloads_total Reload attempts by result.",
                "# TYPE mlops_serve_reloads_total counter",
            ]
            for result in ("ok", "failed"):
                lines.append(f'mlops_serve_reloads_total{{result="{result}"}} {self.reloads[result]}')
        labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in model.items() if k != "loaded_at_epoch")
        lines += [
            "# HELP mlops_serve_model_info The model being served (value 1).",
            "# TYPE mlops_serve_model_info gauge",
            f"mlops_serve_model_info{{{labels}}} 1",
            "# HELP mlops_serve_model_version The served registered model version.",
            "# TYPE mlops_serve_model_version gauge",
            f"mlops_serve_model_version {model.get('version', 0)}",
            "# HELP mlops_serve_model_loaded_timestamp_seconds When the served model was loaded.",
            "# TYPE mlops_serve_model_loaded_timestamp_seconds gauge",
            f"mlops_serve_model_loaded_timestamp_seconds {model.get('loaded_at_epoch', 0)}",
        ]
        return "\n".join(lines) + "\n"
