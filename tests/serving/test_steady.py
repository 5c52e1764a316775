"""
Steady under load (issue #29, item 5): after every model load the heap is frozen, so the garbage
collector's full collections no longer walk the model's objects (they stopped the server for
0.6-1.6 s about every 8 large requests).
"""

from __future__ import annotations

import gc

from airflow_provider_mlops.ml.features import build_preprocessor, model_inputs
from airflow_provider_mlops.serving.app import GC_YOUNG_THRESHOLD
from tests.serving.helpers import churn_frame, server_for


def test_the_heap_is_frozen_after_every_load() -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    frame = churn_frame(500, 4)
    x = model_inputs(frame, "churned")
    pre, numeric, categorical = build_preprocessor(x, None, target=None)
    model = Pipeline([("features", pre), ("model", RandomForestClassifier(n_estimators=30))]).fit(
        x[numeric + categorical], frame.churned
    )
    gc.unfreeze()
    default = gc.get_threshold()
    server = server_for(model)
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD  # a large request no longer sets off dozens
    first = gc.get_freeze_count()
    assert first > 10_000  # the model and everything loaded with it
    tracked = len(gc.get_objects())  # what a full collection still walks
    assert tracked < first
    server.reload({})
    assert gc.get_freeze_count() > 10_000
    server.reload({"unload": True})
    assert server.current is None and gc.get_freeze_count() > 0
    gc.unfreeze()
    gc.set_threshold(*default)
