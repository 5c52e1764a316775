"""ml/lineage.py and pin_inputs: the digest of the rows, the tags naming them, versions pinned."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_mlops.datasets import DatasetError
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from airflow_provider_mlops.ml.lineage import DataPin, data_tags, frame_digest, read_data_tags
from airflow_provider_mlops.operators.common import pin_inputs

FRAME = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, float("nan"), 2.0]})


def test_the_digest_ignores_row_order_and_sees_any_changed_row_or_column() -> None:
    digest = frame_digest(FRAME)
    assert digest.startswith("sha256:") and frame_digest(FRAME.iloc[::-1]) == digest
    changed = FRAME.copy()
    changed.loc[1, "a"] = 5
    assert frame_digest(changed) != digest
    assert frame_digest(FRAME.iloc[:2]) != digest  # a row removed
    assert frame_digest(pd.concat([FRAME, FRAME.iloc[:1]])) != digest  # a row duplicated
    assert frame_digest(FRAME.rename(columns={"c": "d"})) != digest
    assert frame_digest(FRAME.astype({"a": "float64"})) != digest  # same numbers, another type
    assert frame_digest(pd.DataFrame({"l": [[1, 2], [3]]})).startswith("sha256:")  # unhashable cells


def test_a_list_column_beside_bytes_that_are_not_utf8_is_digested_and_any_change_seen() -> None:
    """A frame with an unhashable column and binary data (the ML path's property test found it):
    its text fallback decoded the bytes as UTF-8 and failed the training."""
    frame = pd.DataFrame({"l": [["a"], ["b", "c"]], "raw": [b"\x00\x83\xff", b"ok"], "n": [1, 2]})
    digest = frame_digest(frame)
    assert digest.startswith("sha256:") and frame_digest(frame.iloc[::-1]) == digest
    changed = frame.copy()
    changed.loc[0, "raw"] = b"\x00\x84\xff"
    assert frame_digest(changed) != digest
    changed = frame.copy()
    changed.at[1, "l"] = ["b"]
    assert frame_digest(changed) != digest


def test_tags_round_trip_for_one_input_and_for_several() -> None:
    one = data_tags("training", [DataPin("file:///lake/t", 12)], "sha256:ab")
    assert one == {
        "mlops.training_data.uri": "file:///lake/t",
        "mlops.training_data.version": "12",
        "mlops.training_data.digest": "sha256:ab",
    }
    assert read_data_tags(one, "training") == {
        "data": [{"uri": "file:///lake/t", "version": 12}],
        "uris": ["file:///lake/t@v12"],
        "digest": "sha256:ab",
    }
    several = data_tags("evaluation", [DataPin("s3://b/a", 3), DataPin("s3://b/plain.csv", None)])
    assert several["mlops.evaluation_data.version"] == "[3, null]"
    assert read_data_tags(several, "evaluation")["uris"] == ["s3://b/a@v3", "s3://b/plain.csv"]
    assert read_data_tags({}, "training") is None
    assert data_tags("reference", [DataPin("file:///x", None)]) == {
        "mlops.reference_data.uri": "file:///x",
        "mlops.reference_data.version": "none",
    }


def test_pin_inputs_pins_tables_and_leaves_plain_files_unversioned(tmp_path: Path) -> None:
    storage = ObjectStorageHook(aws_conn_id=None)
    table = (tmp_path / "t").as_uri()
    for _ in range(3):
        storage.write_dataset(table, pa.table({"a": [1]}).to_batches(), mode="append")
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": [1]}), plain)
    assert pin_inputs(storage, [table, f"{table}@v1", plain.as_uri()]) == [
        DataPin(table, 2),
        DataPin(table, 1),
        DataPin(plain.as_uri(), None),
    ]
    with pytest.raises(DatasetError, match=r"t has no version 5; its versions are 0-2"):
        pin_inputs(storage, [f"{table}@v5"])
    with pytest.raises(DatasetError, match="is not a Delta table"):
        pin_inputs(storage, [f"{plain.as_uri()}@v1"])


def test_tags_naming_more_uris_than_versions_are_refused_not_cut_short() -> None:
    tags = {
        "mlops.training_data.uri": '["file:///a", "file:///b"]',
        "mlops.training_data.version": "[3]",
    }
    with pytest.raises(ValueError, match="name 2 and 1 inputs"):
        read_data_tags(tags, "training")
