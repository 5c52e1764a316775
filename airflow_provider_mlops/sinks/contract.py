"""
The write contract shared by every sink hook: modes, keys, partitions, empty sources and counts.

PostgreSQL (:class:`~airflow_provider_mlops.hooks.postgres.PostgresBatchHook`), any common-sql database
(:class:`~airflow_provider_mlops.hooks.sql.SqlBatchHook`) and MongoDB
(:class:`~airflow_provider_mlops.hooks.mongo.MongoBatchHook`) check their options, their empty sources
and their upsert keys here, so the same load gets the same answer on every sink:

- **NULL upsert keys are an error.** A NULL never equals another NULL in SQL, so each database
  used to do something different with them (one row kept, a new row on every run, one document).
- **A key repeated within one load is an error**, naming the key and the rows; a ``drop_duplicates``
  step in ``TransformOperator`` (keeps the first row of a key) is the way to say which row counts.
- **An empty source** does what ``on_empty`` says: ``skip`` (the target is left untouched),
  ``replace`` (a ``replace`` mode empties the target or the partition) or ``fail``.

The checks run while the rows stream into the sink's transaction (or staging collection) and are
decided before anything is committed, so a refused load leaves the target as it was. The duplicate
check keeps the key columns and a 64-bit hash per row in a temporary directory, not in memory, so a
load's memory stays flat with its row count (:class:`KeyCheck`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import pyarrow as pa

OnEmpty = Literal["skip", "replace", "fail"]
ON_EMPTY: tuple[str, ...] = ("skip", "replace", "fail")
#: the write modes of every sink (see :mod:`airflow_provider_mlops.sinks.specs`); each sink has all
#: or some of them
WRITE_MODES: tuple[str, ...] = ("append", "replace", "replace_partition", "upsert")
# Rows of each kind named in an error message.
_SHOWN = 5


class WriteContractError(ValueError):
    """A write refused for a reason a retry cannot fix (options, columns, keys); the target is unchanged."""


class KeyViolation(WriteContractError):
    """NULL or repeated upsert keys in the rows of one load."""


class EmptySourceError(WriteContractError):
    """The source has no rows and ``on_empty="fail"``."""


def check_options(
    *,
    mode: str,
    modes: Sequence[str],
    keys: Sequence[str] | None,
    partition: Mapping[str, Any] | None,
    on_empty: str,
    partition_modes: Sequence[str] = ("replace_partition",),
) -> None:
    """
    Refuse a mode the sink does not have, ``upsert`` without keys, a partition mode without a
    partition and an unknown ``on_empty``.

    :param modes: the sink's modes (:data:`WRITE_MODES` or some of them).
    :param partition_modes: the modes that need ``partition``.
    """
    if mode not in modes:
        raise WriteContractError(f"mode must be one of {tuple(modes)}, got {mode!r}")
    if on_empty not in ON_EMPTY:
        raise WriteContractError(f"on_empty must be one of {ON_EMPTY}, got {on_empty!r}")
    if mode == "upsert" and not keys:
        raise WriteContractError("mode='upsert' needs keys=[...]")
    if mode in partition_modes and not partition:
        raise WriteContractError(f"mode={mode!r} needs partition={{column: value}}")
    if keys is not None and (isinstance(keys, str) or len(set(keys)) != len(keys)):
        raise WriteContractError(f"keys must be a list of distinct column names, got {keys!r}")


def check_columns(
    names: Sequence[str],
    *,
    keys: Sequence[str] | None = None,
    partition: Mapping[str, Any] | None = None,
    newer_column: str | None = None,
    where: str = "the data",
) -> None:
    """Key, partition and ``newer_column`` names must be columns of ``where`` (before any write)."""
    wanted = {
        **{k: "key" for k in keys or []},
        **{p: "partition" for p in partition or {}},
        **({newer_column: "newer_column"} if newer_column else {}),
    }
    missing = [f"{name!r} ({role})" for name, role in wanted.items() if name not in names]
    if missing:
        raise WriteContractError(
            f"Column(s) {', '.join(missing)} are not in {where} (its columns: {list(names)}); "
            "check the spelling: names are case-sensitive"
        )


def begin_write(
    batches: Iterable[pa.RecordBatch],
    *,
    target: str,
    log: Any,
    mode: str,
    modes: Sequence[str],
    keys: Sequence[str] | None = None,
    partition: Mapping[str, Any] | None = None,
    on_empty: str = "skip",
    newer_column: str | None = None,
    schema: pa.Schema | None = None,
    peek: bool = True,
    partition_modes: Sequence[str] = ("replace_partition",),
) -> tuple[pa.Schema | None, Iterator[pa.RecordBatch]] | None:
    """
    Every sink's first steps, in this order: refuse bad options (:func:`check_options`); with
    ``peek``, find the schema (the first batch's, else ``schema``) and refuse key, partition and
    ``newer_column`` names it lacks (:func:`check_columns`); then decide an empty source
    (:func:`empty_outcome`).

    :param target: what the sink writes, for messages (``table 'x'``, ``collection 'x'``).
    :param log: the hook's logger.
    :param peek: find the schema (tables); a collection takes any fields.
    :return: the schema (None without ``peek``) and the batches to write, or None when the sink has
        nothing to do (no columns, or no rows and ``on_empty="skip"``): it returns :func:`new_counts`.
    """
    check_options(
        mode=mode,
        modes=modes,
        keys=keys,
        partition=partition,
        on_empty=on_empty,
        partition_modes=partition_modes,
    )
    stream: Iterator[pa.RecordBatch] = iter(batches)
    if peek:
        from airflow_provider_mlops.utils.arrow import peek_schema

        schema, stream = peek_schema(stream, schema)
        if schema is None or not schema.names:
            log.info("No batches and no schema: nothing to write to %s", target)
            return None
        check_columns(schema.names, keys=keys, partition=partition, newer_column=newer_column)
    empty, stream = split_empty(stream)
    if empty and empty_outcome(on_empty, target=target) == "skip":
        log.info("No rows for %s (mode=%s, on_empty=%s): it is not touched", target, mode, on_empty)
        return None
    return schema, stream


def check_target_columns(
    names: Sequence[str],
    existing: Sequence[str],
    *,
    table: str,
    casefold: bool = False,
    error: type[Exception] = WriteContractError,
) -> None:
    """
    Every column of the data must be a column of the existing target (found before any row moves).

    :param casefold: the database matches column names case-insensitively (SQLite, MySQL).
    :param error: the sink's error class (a :class:`WriteContractError`).
    """
    fold = str.casefold if casefold else str
    known = {fold(n) for n in existing}
    unknown = [n for n in names if fold(n) not in known]
    if unknown:
        raise error(
            f"Column(s) {unknown} do not exist in table {table!r} (its columns: {list(existing)}); "
            "nothing was written"
        )


def check_partition_rows(
    written: int, stored: int, partition: Mapping[str, Any], *, error: type[Exception] = WriteContractError
) -> None:
    """``replace_partition``: every written row must belong to the partition (checked before the commit)."""
    if stored != written:
        raise error(
            f"replace_partition: {written} rows were written but {stored} rows in the target match "
            f"partition {dict(partition)}: every written row must belong to the partition; nothing was written"
        )


def new_counts(*extra: str) -> dict[str, int]:
    """The counts every sink returns: ``rows`` written, ``inserted``, ``updated``, ``deleted`` (+ ``extra``)."""
    return dict.fromkeys(("rows", "inserted", "updated", "deleted", *extra), 0)


def split_empty(batches: Iterable[pa.RecordBatch]) -> tuple[bool, Iterator[pa.RecordBatch]]:
    """
    Whether a batch stream holds no row at all, and the same stream to consume.

    Reads ahead only up to the first batch with rows (leading empty batches are dropped).
    """
    iterator = iter(batches)
    for batch in iterator:
        if batch.num_rows:

            def chained(first: pa.RecordBatch = batch) -> Iterator[pa.RecordBatch]:
                yield first
                yield from iterator

            return False, chained()
    return True, iter(())


def empty_outcome(on_empty: str, *, target: str) -> str:
    """
    What an empty source does: ``skip`` (nothing is touched, a missing table is not created),
    ``write`` (``on_empty="replace"``: the sink runs its mode with no rows, so a replace mode empties
    the target / partition and a missing table is created) or an :class:`EmptySourceError`.
    """
    if on_empty == "fail":
        raise EmptySourceError(
            f"The source has no rows and on_empty='fail': {target} was not touched "
            "(on_empty='skip' leaves it as it is, on_empty='replace' empties it in a replace mode)"
        )
    return "write" if on_empty == "replace" else "skip"


class KeyCheck:
    """
    Watch the rows of one upsert go by and refuse NULL or repeated keys (call :meth:`verify` before
    the commit).

    Row positions in messages count from 0 over the whole load, in the order the rows were given.

    Memory stays flat with the row count: NULLs are found batch by batch, and for repeats each row's
    key goes to a temporary directory twice, as a 64-bit hash with its position (16 bytes, spread over
    :attr:`BUCKETS` files by the hash's top bits) and as the key columns themselves (an Arrow IPC
    file). :meth:`verify` sorts one bucket at a time (1/64 of the hashes: 1.25 MB at 5M rows) and
    re-checks the rows whose hash repeats against their exact key values (read back from the key
    file), so a hash collision is never reported and a repeat is never missed. Hand-written
    because no library does a disk-backed duplicate check over a stream (pyarrow's ``group_by``
    and pandas' ``duplicated`` hold the whole key set, which is what this replaces).

    :param keys: the key columns.
    """

    #: files the hashes are spread over (so :meth:`verify` holds 1/BUCKETS of them at a time)
    BUCKETS = 64

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        self.rows = 0
        self.null_rows = 0
        self._null_examples: list[str] = []
        self._spill: _KeySpill | None = None
        self._verified = False
        #: the violation raised, also when a driver wrapped it (ADBC re-raises stream errors as its own)
        self.error: KeyViolation | None = None

    def watch(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """
        Yield ``batches`` unchanged, remembering their keys (on disk).

        A batch with a NULL key is not yielded: the rest of the stream is read (keys only) to count
        them all and :class:`KeyViolation` is raised, so no database sees a NULL key (some would
        refuse it with an error of their own, others store it).
        """
        iterator = iter(batches)
        for batch in iterator:
            if self._observe(batch):
                for rest in iterator:
                    self._observe(rest)
                self.verify()
            yield batch

    def _observe(self, batch: pa.RecordBatch) -> bool:
        """Remember the keys of ``batch``; whether it has a NULL key."""
        import pyarrow.compute as pc

        if not batch.num_rows:
            return False
        check_columns(batch.schema.names, keys=self.keys)
        keys = batch.select(self.keys)
        nulls = None
        for column in keys.columns:
            is_null = column.is_null(nan_is_null=True) if _is_float(column.type) else column.is_null()
            nulls = is_null if nulls is None else pc.or_(nulls, is_null)
        null_count = int(pc.sum(nulls).as_py() or 0)
        if null_count:
            self.null_rows += null_count
            if len(self._null_examples) < _SHOWN:
                positions = pc.indices_nonzero(nulls).to_pylist()[: _SHOWN - len(self._null_examples)]
                for position in positions:
                    self._null_examples.append(f"row {self.rows + position} ({_describe(keys, position)})")
            self._close()
        elif not self.null_rows:
            # Once a NULL is seen the load fails: only counting goes on, no keys are kept.
            if self._spill is None:
                self._spill = _KeySpill(keys.schema, self.BUCKETS)
            self._spill.add(keys, self.rows)
        self.rows += batch.num_rows
        return bool(null_count)

    def verify(self) -> None:
        """Raise :class:`KeyViolation` naming how many rows have NULL or repeated keys, and where."""
        if self.error is not None:
            raise self.error
        if self._verified:
            return
        try:
            self._verify()
        except KeyViolation as err:
            self.error = err
            raise
        finally:
            self._close()
        self._verified = True

    def _close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _verify(self) -> None:
        keys = ", ".join(self.keys)
        if self.null_rows:
            raise KeyViolation(
                f"{self.null_rows} of {self.rows} rows have a NULL (or NaN) upsert key ({keys}), e.g. "
                f"{'; '.join(self._null_examples)}. A NULL key matches no stored row, so each database "
                "would do something different with it: give every row a key, or filter those rows out "
                "(e.g. a drop_nulls step in TransformOperator). Nothing was written."
            )
        if self._spill is None:
            return
        repeated, extra_rows, examples = self._spill.repeats(self.keys)
        if not repeated:
            return
        shown = []
        for _, described, positions in examples:
            listed = ", ".join(map(str, positions[:_SHOWN])) + (", ..." if len(positions) > _SHOWN else "")
            shown.append(f"{described} at rows {listed}")
        raise KeyViolation(
            f"{repeated} upsert key value(s) ({keys}) occur more than once in this load "
            f"({extra_rows} extra rows of {self.rows}), e.g. {'; '.join(shown)}. Which row should "
            "win is not decided by the load: deduplicate upstream (a drop_duplicates step in "
            "TransformOperator keeps the first row of each key). Nothing was written."
        )


# A row's (hash, position) as spilled to the bucket files.
_PAIR = [("hash", "<u8"), ("position", "<i8")]


class _KeySpill:
    """The keys of one load on disk: hashes with positions in buckets, and the key columns."""

    def __init__(self, schema: pa.Schema, buckets: int) -> None:
        import tempfile

        import pyarrow as pa

        # Dictionary columns are stored decoded (an IPC file holds one dictionary per column).
        self.schema = pa.schema(
            [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema]
        )
        self.buckets = buckets
        self._shift = 64 - (buckets - 1).bit_length()
        self._dir = tempfile.TemporaryDirectory(prefix="mlops-keycheck-")
        self._key_path = f"{self._dir.name}/keys.arrow"
        self._keys: Any = pa.ipc.new_file(self._key_path, self.schema)
        self._files: list[Any] = [None] * buckets
        #: first row position of each spilled batch (to find a position's batch in the key file)
        self._starts: list[int] = []

    def add(self, keys: pa.RecordBatch, start: int) -> None:
        import numpy as np
        import pyarrow as pa

        if keys.schema != self.schema:
            # Later batches may carry other (castable) types; the load conforms them the same way.
            keys = pa.RecordBatch.from_arrays(
                [
                    (c.dictionary_decode() if pa.types.is_dictionary(c.type) else c).cast(f.type)
                    for c, f in zip(keys.columns, self.schema, strict=True)
                ],
                schema=self.schema,
            )
        self._keys.write_batch(keys)
        self._starts.append(start)
        hashes = _row_hashes(keys)
        pairs = np.empty(len(hashes), dtype=_PAIR)
        pairs["hash"] = hashes
        pairs["position"] = np.arange(start, start + len(hashes), dtype=np.int64)
        bucket = (hashes >> np.uint64(self._shift)).astype(np.intp)
        pairs = pairs[np.argsort(bucket, kind="stable")]
        bounds = np.concatenate(([0], np.cumsum(np.bincount(bucket, minlength=self.buckets))))
        for b in range(self.buckets):
            if bounds[b + 1] > bounds[b]:
                if self._files[b] is None:
                    self._files[b] = open(f"{self._dir.name}/{b}.bin", "wb")  # noqa: SIM115
                self._files[b].write(pairs[bounds[b] : bounds[b + 1]].tobytes())

    def repeats(self, key_names: list[str]) -> tuple[int, int, list[tuple[int, str, list[int]]]]:
        """
        How many key values repeat, the rows beyond the first of each, and up to :data:`_SHOWN`
        examples (first position, the key, its positions), those seen first first.
        """
        import numpy as np
        import pyarrow as pa

        self._keys.close()
        self._keys = None
        for f in self._files:
            if f is not None:
                f.close()
        source = pa.memory_map(self._key_path)
        reader = pa.ipc.open_file(source)
        starts = np.array(self._starts, dtype=np.int64)
        repeated = extra = 0
        examples: list[tuple[int, str, list[int]]] = []
        try:
            for b in range(self.buckets):
                if self._files[b] is None:
                    continue
                pairs = np.fromfile(f"{self._dir.name}/{b}.bin", dtype=_PAIR)
                if len(pairs) < 2:
                    continue
                pairs = pairs[np.argsort(pairs["hash"], kind="stable")]
                same = pairs["hash"][1:] == pairs["hash"][:-1]
                if not same.any():
                    continue
                candidate = np.zeros(len(pairs), dtype=bool)
                candidate[1:] |= same
                candidate[:-1] |= same
                positions = np.sort(pairs["position"][candidate])
                del pairs, same, candidate
                # The rows whose hash repeats, with their exact keys: equal keys have equal hashes,
                # so grouping them by value finds every repeat and no collision.
                table = _rows_at(reader, starts, positions).append_column("__position", pa.array(positions))
                b_repeated, b_extra, b_examples = _exact_repeats(table, key_names)
                repeated += b_repeated
                extra += b_extra
                examples = sorted(examples + b_examples)[:_SHOWN]
        finally:
            source.close()
        return repeated, extra, examples

    def close(self) -> None:
        for f in self._files:
            if f is not None:
                f.close()
        if self._keys is not None:
            self._keys.close()
            self._keys = None
        self._dir.cleanup()


def _rows_at(reader: Any, starts: Any, positions: Any) -> pa.Table:
    """The rows at (sorted) ``positions`` of the key file, in that order."""
    import numpy as np
    import pyarrow as pa

    which = np.searchsorted(starts, positions, side="right") - 1
    pieces = []
    for index in np.unique(which):
        batch = reader.get_batch(int(index))
        pieces.append(batch.take(pa.array(positions[which == index] - starts[index])))
    return pa.Table.from_batches(pieces, schema=reader.schema)


def _exact_repeats(
    table: pa.Table, key_names: list[str]
) -> tuple[int, int, list[tuple[int, str, list[int]]]]:
    import pyarrow.compute as pc

    grouped = table.group_by(key_names, use_threads=False).aggregate(
        [("__position", "count"), ("__position", "min")]
    )
    grouped = grouped.filter(pc.greater(grouped.column("__position_count"), 1))
    if not grouped.num_rows:
        return 0, 0, []
    extra = int(pc.sum(grouped.column("__position_count")).as_py()) - grouped.num_rows
    first = grouped.sort_by([("__position_min", "ascending")]).slice(0, _SHOWN)
    # The rows of those keys, grouped the same way (pc.equal would join -0.0 and 0.0, grouping does not).
    wanted = table.filter(pc.is_in(table.column("__position"), first.column("__position_min")))
    members = table.join(
        wanted.select(key_names).append_column("__first", wanted.column("__position")),
        keys=key_names,
        join_type="inner",
        use_threads=False,
    )
    examples = []
    for i in range(first.num_rows):
        start = first.column("__position_min")[i]
        positions = sorted(
            members.filter(pc.equal(members.column("__first"), start)).column("__position").to_pylist()
        )
        examples.append((positions[0], _describe(first.select(key_names), i), positions))
    return grouped.num_rows, extra, examples


# Hashing each row's key to 64 bits, vectorised with numpy. Hand-written: pyarrow has no public
# row-hash kernel and pandas (``hash_array``) is not a core dependency. Collisions only cost a re-check.
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(values: Any) -> Any:
    """splitmix64's finaliser (a bijection of uint64)."""
    import numpy as np

    with np.errstate(over="ignore"):
        values = values ^ (values >> np.uint64(30))
        values = values * np.uint64(_MIX1)
        values = values ^ (values >> np.uint64(27))
        values = values * np.uint64(_MIX2)
        return values ^ (values >> np.uint64(31))


def _row_hashes(keys: pa.RecordBatch) -> Any:
    import numpy as np

    result = np.zeros(keys.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in keys.columns:
            result = _mix(result * np.uint64(_GOLDEN) + _column_hash(column))
    return result


def _column_hash(column: pa.Array) -> Any:
    """One uint64 per value of ``column`` (no NULLs), equal for equal values."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as t

    data_type = column.type
    if t.is_dictionary(data_type):
        return _column_hash(column.dictionary_decode())
    if t.is_boolean(data_type):
        return column.cast(pa.uint8()).to_numpy(zero_copy_only=False).astype(np.uint64)
    if t.is_floating(data_type) and data_type.bit_width > 16:
        # -0.0 and 0.0 get one hash (adding 0.0 turns the one into the other); the exact re-check
        # then keeps them apart, as Arrow's grouping always did.
        column = pc.add(column, pa.scalar(0.0, data_type))
    if (
        t.is_integer(data_type)
        or t.is_floating(data_type)
        or t.is_temporal(data_type)
        or t.is_decimal(data_type)
    ) and data_type.bit_width in (8, 16, 32, 64, 128, 256):
        width = data_type.bit_width // 8
        raw = np.frombuffer(column.buffers()[1], dtype=np.uint8)
        raw = raw[column.offset * width : (column.offset + len(column)) * width]
        if width <= 8:
            return _mix(raw.view(f"<u{width}").astype(np.uint64))
        words = raw.view("<u8").reshape(len(column), width // 8)
        hashed = np.zeros(len(column), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for word in words.T:
                hashed = _mix(hashed * np.uint64(_GOLDEN) + word)
        return hashed
    if (
        t.is_string(data_type)
        or t.is_binary(data_type)
        or t.is_large_string(data_type)
        or t.is_large_binary(data_type)
    ):
        return _bytes_hash(column.cast(pa.large_binary()))
    # Anything else (fixed-size binary, lists, structs...): Python's hash of the value, slow but rare.
    return np.array([hash(repr(value)) for value in column.to_pylist()], dtype=np.int64).view(np.uint64)


def _bytes_hash(column: pa.Array, chunk: int = 8192) -> Any:
    """A polynomial hash (mod 2**64) of each value's bytes and length, ``chunk`` rows at a time."""
    import numpy as np

    out = np.empty(len(column), dtype=np.uint64)
    for begin in range(0, len(column), chunk):
        part = column.slice(begin, chunk)
        buffers = part.buffers()
        offsets = np.frombuffer(buffers[1], dtype=np.int64)[part.offset : part.offset + len(part) + 1]
        first, last = int(offsets[0]), int(offsets[-1])
        data = (
            np.frombuffer(buffers[2], dtype=np.uint8)[first:last].astype(np.uint64)
            if buffers[2] is not None and last > first
            else np.zeros(0, dtype=np.uint64)
        )
        lengths = np.diff(offsets)
        relative = offsets[:-1] - first
        longest = int(lengths.max()) if len(lengths) else 0
        with np.errstate(over="ignore"):
            powers = np.cumprod(np.full(max(longest, 1), np.uint64(_MIX2), dtype=np.uint64))
            index = np.arange(last - first, dtype=np.int64) - np.repeat(relative, lengths)
            terms = (data + np.uint64(1)) * powers[index]
            sums = np.concatenate((np.zeros(1, dtype=np.uint64), np.cumsum(terms, dtype=np.uint64)))
            hashed = sums[relative + lengths] - sums[relative]
            out[begin : begin + len(part)] = _mix(hashed + lengths.astype(np.uint64) * np.uint64(_GOLDEN))
    return out


def _is_float(data_type: pa.DataType) -> bool:
    import pyarrow.types as t

    return bool(t.is_floating(data_type))


def _describe(table: Any, row: int) -> str:
    """``id=1, day='2024-01-02'`` for one row of the key columns."""
    parts = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        value = column[row].as_py()
        text = repr(value)
        parts.append(f"{name}={text if len(text) <= 60 else text[:57] + '...'}")
    return ", ".join(parts)
