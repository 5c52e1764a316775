"""utils.csv: CSV files and COPY rows with any value (quoted newlines, CR, quotes, values > 1 MiB)."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from airflow_provider_mlops.utils.csv import CsvRowsParser, iter_csv_batches

TRICKY = [
    "line1\nline2",
    "cr\ronly",
    "crlf\r\nend",
    'say "hi", "bye"',
    "back\\slash\\n not a newline",
    "tab\there",
    "emoji 🦆 ünïcödé 中文",
    "",
    None,
    "\n",
    '"',
    ",",
]


def _write(path: Path, table: pa.Table) -> None:
    """As the dataset writer writes CSV: Arrow's CSVWriter, header, strings quoted, NULL unquoted."""
    with pacsv.CSVWriter(str(path), table.schema) as writer:
        writer.write_table(table)


def _opener(path: Path, opened: list[int] | None = None):
    def open_stream():
        if opened is not None:
            opened.append(1)
        return pa.OSFile(str(path), "rb")

    return open_stream


def _read(path: Path, **kwargs) -> tuple[pa.Table, list[pa.RecordBatch]]:
    batches = list(iter_csv_batches(_opener(path), **kwargs))
    return pa.Table.from_batches(batches), batches


def test_tricky_values_and_null_vs_empty_round_trip(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(len(TRICKY))), "text": TRICKY})
    _write(tmp_path / "t.csv", table)
    back, _ = _read(tmp_path / "t.csv")
    assert back.schema == table.schema
    assert back.to_pylist() == table.to_pylist()


def test_quoted_newlines_beyond_one_mib_keep_every_row(tmp_path: Path) -> None:
    # ~3 MiB with quoted newlines in many rows: Arrow's default chunker cuts inside values here.
    n = 60_000
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "text": [TRICKY[i % len(TRICKY)] if i % 7 else f"row {i}\n" + "x" * (i % 250) for i in range(n)],
            "f": pa.array([i / 3 for i in range(n)], pa.float64()),
        }
    )
    path = tmp_path / "nl.csv"
    _write(path, table)
    assert path.stat().st_size > 2 << 20
    back, batches = _read(path, batch_size=5_000)
    assert max(b.num_rows for b in batches) <= 5_000
    assert back.equals(table)


def test_a_single_five_mb_value_reopens_with_a_larger_block(tmp_path: Path) -> None:
    big = ('0123456789abcdef\n\r",' * (5_000_000 // 20))[:5_000_000]
    texts = ["before"] * 2_000 + [big] + ["after"] * 2_000
    table = pa.table({"id": pa.array(range(len(texts)), pa.int64()), "text": texts})
    path = tmp_path / "big.csv"
    _write(path, table)
    opened: list[int] = []
    batches = list(iter_csv_batches(_opener(path, opened), batch_size=1_000))
    back = pa.Table.from_batches(batches)
    assert back.num_rows == len(texts)
    assert back.equals(table)  # the rows yielded before the restart are not repeated
    assert 2 <= len(opened) <= 5  # 1 MiB doubled until the 5 MB row fits in a block: 8 MiB


def test_types_inferred_before_a_restart_are_kept(tmp_path: Path) -> None:
    # The first block infers int64 for "n"; after the restart the rest is read as int64 too.
    rows = [f'{i},"{"y" * (3 << 20) if i == 30_000 else "s"}"\n' for i in range(40_000)]
    path = tmp_path / "typed.csv"
    path.write_text("n,text\n" + "".join(rows))
    opened: list[int] = []
    batches = list(iter_csv_batches(_opener(path, opened)))
    back = pa.Table.from_batches(batches)
    assert len(opened) >= 2  # the 3 MiB row does not fit with 1 MiB blocks
    assert {b.schema for b in batches} == {pa.schema([("n", pa.int64()), ("text", pa.string())])}
    assert back.column("n").to_pylist() == list(range(40_000))
    assert len(back.column("text")[30_000].as_py()) == 3 << 20


def test_crlf_line_ends_and_an_explicit_schema(tmp_path: Path) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(
        b'id,at,price,ok,text\r\n1,2026-01-02 03:04:05Z,12.50,true,"a\r\nb"\r\n2,,,,""\r\n3,,-0.01,false,\r\n'
    )
    schema = pa.schema(
        [
            ("id", pa.int32()),
            ("at", pa.timestamp("us", tz="UTC")),
            ("price", pa.decimal128(10, 2)),
            ("ok", pa.bool_()),
            ("text", pa.string()),
        ]
    )
    back, _ = _read(path, schema=schema)
    assert back.schema == schema
    assert back.to_pylist() == [
        {
            "id": 1,
            "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            "price": decimal.Decimal("12.50"),
            "ok": True,
            "text": "a\r\nb",
        },
        {"id": 2, "at": None, "price": None, "ok": None, "text": ""},
        {"id": 3, "at": None, "price": decimal.Decimal("-0.01"), "ok": False, "text": None},
    ]


def test_columns_headerless_files_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "nohead.csv"
    path.write_text('1,"x\ny",2.5\n2,"",\n')
    back, _ = _read(path, column_names=["a", "b", "c"], columns=["b", "a"])
    assert back.to_pylist() == [{"b": "x\ny", "a": 1}, {"b": "", "a": 2}]
    (tmp_path / "empty.csv").write_bytes(b"")
    assert list(iter_csv_batches(_opener(tmp_path / "empty.csv"))) == []
    (tmp_path / "header.csv").write_text("a,b\n")
    assert list(iter_csv_batches(_opener(tmp_path / "header.csv"))) == []


def test_a_malformed_file_still_fails_naming_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(pa.ArrowInvalid, match="Expected 2 columns, got 1"):
        _read(path)


def test_rows_parser_parses_whole_rows_of_any_size_as_one_block() -> None:
    schema = pa.schema([("id", pa.int64()), ("text", pa.string()), ("ok", pa.bool_())])
    parse = CsvRowsParser(schema, true_values=["t"], false_values=["f"])
    big = "z\n" * 1_500_000  # 3 MB: more than Arrow's default block
    data = f'1,"{big}",t\n2,"",f\n3,,\n4,"a""b\r\nc",t\n'.encode()
    batch = parse(bytearray(data))
    assert batch.schema == schema
    assert batch.to_pylist() == [
        {"id": 1, "text": big, "ok": True},
        {"id": 2, "text": "", "ok": False},
        {"id": 3, "text": None, "ok": None},
        {"id": 4, "text": 'a"b\r\nc', "ok": True},
    ]
    assert parse(b"").num_rows == 0 and parse(b"").schema == schema
