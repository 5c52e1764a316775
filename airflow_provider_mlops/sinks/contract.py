"""
The write contract shared by every sink hook: modes, keys, partitions, empty sources and counts.

PostgreSQL (:class:`~airflow_provider_mlops.hooks.postgres.PostgresHook`), any common-sql database
(:class:`~airflow_provider_mlops.hooks.sql.SqlBatchHook`) and MongoDB
(:class:`~airflow_provider_mlops.hooks.mongo.MongoHook`) check their options, their empty sources
and their upsert keys here, so the same load gets the same answer on every sink:

- **NULL upsert keys are an error.** A NULL never equals another NULL in SQL, so each database
  used to do something different with them (one row kept, a new row on every run, one document).
- **A key repeated within one load is an error**, naming the key and the rows; a ``drop_duplicates``
  step in ``TransformOperator`` (keeps the first row of a key) is the way to say which row counts.
- **An empty source** does what ``on_empty`` says: ``skip`` (the target is left untouched),
  ``replace`` (a ``replace`` mode empties the target or the partition) or ``fail``.

The checks run while the rows stream into the sink's transaction (or staging collection) and are
decided before anything is committed, so a refused load leaves the target as it was. Only the key
columns are kept for the duplicate check (e.g. 8 MB for 1M ``bigint`` keys), never whole rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import pyarrow as pa

OnEmpty = Literal["skip", "replace", "fail"]
ON_EMPTY: tuple[str, ...] = ("skip", "replace", "fail")
SQL_MODES: tuple[str, ...] = ("append", "replace", "replace_partition", "upsert")
MONGO_MODES: tuple[str, ...] = ("insert", "upsert", "replace")
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

    :param modes: the sink's modes (:data:`SQL_MODES` or :data:`MONGO_MODES`).
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

    :param keys: the key columns.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        self.rows = 0
        self.null_rows = 0
        self._null_examples: list[str] = []
        self._pieces: list[pa.Table] = []
        #: the violation raised, also when a driver wrapped it (ADBC re-raises stream errors as its own)
        self.error: KeyViolation | None = None

    def watch(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """
        Yield ``batches`` unchanged, remembering their key columns.

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
        import pyarrow as pa
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
        elif not self.null_rows:
            # Once a NULL is seen the load fails: only counting goes on, no keys are kept.
            self._pieces.append(pa.Table.from_batches([keys]))
        self.rows += batch.num_rows
        return bool(null_count)

    def verify(self) -> None:
        """Raise :class:`KeyViolation` naming how many rows have NULL or repeated keys, and where."""
        try:
            self._verify()
        except KeyViolation as err:
            self.error = err
            raise

    def _verify(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = ", ".join(self.keys)
        if self.null_rows:
            raise KeyViolation(
                f"{self.null_rows} of {self.rows} rows have a NULL (or NaN) upsert key ({keys}), e.g. "
                f"{'; '.join(self._null_examples)}. A NULL key matches no stored row, so each database "
                "would do something different with it: give every row a key, or filter those rows out "
                "(e.g. a drop_nulls step in TransformOperator). Nothing was written."
            )
        if not self._pieces:
            return
        table = pa.concat_tables(self._pieces).combine_chunks()
        self._pieces = [table]
        grouped = table.group_by(self.keys).aggregate([([], "count_all")])
        repeated = grouped.filter(pc.greater(grouped.column("count_all"), 1))
        if not repeated.num_rows:
            return
        extra_rows = pc.sum(repeated.column("count_all")).as_py() - repeated.num_rows
        examples = []
        for i in range(min(repeated.num_rows, _SHOWN)):
            mask = None
            for name in self.keys:
                equal = pc.equal(table.column(name), repeated.column(name)[i])
                mask = equal if mask is None else pc.and_(mask, equal)
            positions = pc.indices_nonzero(mask).to_pylist()
            shown = ", ".join(map(str, positions[:_SHOWN])) + (", ..." if len(positions) > _SHOWN else "")
            examples.append(f"{_describe(repeated.select(self.keys), i)} at rows {shown}")
        raise KeyViolation(
            f"{repeated.num_rows} upsert key value(s) ({keys}) occur more than once in this load "
            f"({extra_rows} extra rows of {self.rows}), e.g. {'; '.join(examples)}. Which row should "
            "win is not decided by the load: deduplicate upstream (a drop_duplicates step in "
            "TransformOperator keeps the first row of each key). Nothing was written."
        )


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
