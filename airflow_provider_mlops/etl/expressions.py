"""
A small, safe expression language compiled to vectorized ``pyarrow.compute`` expressions.

Used by filter and derive steps: ``"age >= 18 and country in ['FR', 'DE']"``,
``"monthly_charges * 12"``, ``"is_null(email) or lower(plan) == 'free'"``,
``"`Island Name` == 'Biscoe'"``. The text is parsed with Python's ``ast`` and only the nodes listed
here are accepted: column names (bare, or any name in backticks), literals, comparisons,
``and``/``or``/``not``, overflow-checked arithmetic, ``in``/``not in`` a literal list, and a fixed set
of functions. Nothing is ever ``eval``-ed. The grammar is documented in docs/operators/transform.rst.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

    import pyarrow as pa
    import pyarrow.compute as pc


class ExpressionError(ValueError):
    """The expression uses something the language does not allow, does not parse, or fails on the data."""


# Limits: a user's expression is data, and Python's parser answers a 100,000-deep nesting with
# RecursionError / MemoryError and a 5,000-digit literal with a conversion error. Everything past
# these bounds is an ExpressionError before pyarrow sees it. The bounds are far above any
# hand-written expression: a sum of 90 columns or an `in` list of ~1,500 values fits.
MAX_LENGTH = 10_000  # characters of expression text
MAX_NODES = 2_000  # syntax-tree nodes (names, literals, operators' operands, calls)
MAX_DEPTH = 100  # nesting levels; a chain ``a + b + c`` is one level per operator
_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1  # integer literals are int64 (or uint64 above 2**63 - 1)

# function name -> (pyarrow.compute function, min arguments, max arguments or None for any)
_FUNCTIONS: dict[str, tuple[str, int, int | None]] = {
    "is_null": ("is_null", 1, 1),
    "is_valid": ("is_valid", 1, 1),
    "not_null": ("is_valid", 1, 1),
    "is_nan": ("is_nan", 1, 1),
    "abs": ("abs_checked", 1, 1),  # abs(INT64_MIN) does not fit: an error, not INT64_MIN
    "round": ("round", 1, 2),
    "floor": ("floor", 1, 1),
    "ceil": ("ceil", 1, 1),
    "sqrt": ("sqrt", 1, 1),
    "ln": ("ln", 1, 1),
    "log10": ("log10", 1, 1),
    "lower": ("utf8_lower", 1, 1),
    "upper": ("utf8_upper", 1, 1),
    "strip": ("utf8_trim_whitespace", 1, 1),
    "length": ("utf8_length", 1, 1),
    "starts_with": ("starts_with", 2, 2),
    "ends_with": ("ends_with", 2, 2),
    "contains": ("match_substring", 2, 2),
    "coalesce": ("coalesce", 1, None),
    "if_else": ("if_else", 3, 3),
    "year": ("year", 1, 1),
    "month": ("month", 1, 1),
    "day": ("day", 1, 1),
    "day_of_week": ("day_of_week", 1, 1),
    "hour": ("hour", 1, 1),
    "min": ("min_element_wise", 1, None),
    "max": ("max_element_wise", 1, None),
}
# Functions whose trailing argument is an option (a literal), not an expression.
_PATTERN_FUNCTIONS = {"starts_with", "ends_with", "contains"}
_MAX_ROUND_DIGITS = 76  # the largest decimal precision Arrow has

_COMPARE = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}
# Integer arithmetic uses the *_checked kernels: the unchecked ones wrap around silently
# (2**62 * 4 == 0). Floating-point arithmetic is IEEE 754 in both (overflow gives +-inf).
_BINARY = {
    ast.Add: "add_checked",
    ast.Sub: "subtract_checked",
    ast.Mult: "multiply_checked",
    ast.Div: "divide_checked",
    ast.Pow: "power_checked",
    ast.Mod: None,  # composed from the kernels above, see _modulo
}
# Operator nodes are fields of the nodes that use them; they do not count towards MAX_NODES.
_NOT_COUNTED = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)


def quote_name(name: str) -> str:
    """The backtick-quoted form of a column name, usable in any expression: ``Island Name`` -> `` `Island Name` ``."""
    return "`" + name.replace("`", "``") + "`"


def _substitute_quoted_names(text: str) -> tuple[str, dict[str, str]]:
    """
    Replace every backtick-quoted name with a fresh identifier that Python's parser accepts.

    Returns the new text and the map identifier -> column name. Backticks inside string literals and
    comments are left alone, so the scanner follows Python's tokenizer for those (a backslash skips
    the next character in every kind of string literal, raw ones included). Each identifier is
    surrounded by spaces so that `` `a`and`b` `` stays three tokens.
    """
    if "`" not in text:
        return text, {}
    # A prefix that occurs nowhere in the text cannot collide with a bare column name.
    prefix = "__quoted_"
    while prefix in text:
        prefix += "_"
    out: list[str] = []
    names: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"":
            end = _end_of_string(text, i)
            out.append(text[i:end])
            i = end
        elif char == "#":
            end = min((j for j in (text.find("\n", i), text.find("\r", i)) if j >= 0), default=n)
            out.append(text[i:end])
            i = end
        elif char == "`":
            parts, j = [], i + 1
            while True:
                k = text.find("`", j)
                if k < 0:
                    raise ExpressionError(
                        f"Unterminated backtick-quoted name at character {i} in {_clip(text)} "
                        "(a backtick inside a name is written twice: `a``b` is the column a`b)"
                    )
                parts.append(text[j:k])
                if text.startswith("`", k + 1):  # a doubled backtick is one backtick of the name
                    parts.append("`")
                    j = k + 2
                    continue
                i = k + 1
                break
            placeholder = f"{prefix}{len(names)}_"
            names[placeholder] = "".join(parts)
            out.append(f" {placeholder} ")
        else:
            out.append(char)
            i += 1
    return "".join(out), names


def _end_of_string(text: str, start: int) -> int:
    """The index just past the string literal opening at ``start`` (or where it breaks off)."""
    quote = text[start]
    triple = text.startswith(quote * 3, start)
    i = start + (3 if triple else 1)
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
        elif triple and text.startswith(quote * 3, i):
            return i + 3
        elif not triple and char == quote:
            return i + 1
        elif not triple and char in "\r\n":
            return i  # unterminated: the parser reports it
        else:
            i += 1
    return len(text)


def _check_size(tree: ast.AST, text: str) -> None:
    # Iterative on purpose: a recursive walk is what fails on deep input.
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    nodes = 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ExpressionError(f"Expression is too large (over {MAX_NODES} elements): {_clip(text)}")
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"Expression is nested too deeply (over {MAX_DEPTH} levels): {_clip(text)}; "
                "split it into several derive steps"
            )
        stack.extend((c, depth + 1) for c in ast.iter_child_nodes(node) if not isinstance(c, _NOT_COUNTED))


class _Compiler:
    def __init__(
        self,
        text: str,
        source: str,
        quoted: dict[str, str],
        columns: Collection[str] | None,
        schema: pa.Schema | None,
        zero_division: str = "error",
    ) -> None:
        self.zero_division = zero_division  # "error" (the ETL's rule) or "null" (a model's derive step)
        self.text = text  # as written, for messages
        self.source = source  # as parsed (backtick-quoted names replaced)
        self.quoted = quoted
        self.columns = columns
        self.schema = schema

    # ------------------------------------------------------------------------------------ helpers
    def show(self, node: ast.AST) -> str:
        """A node as the user would have written it (placeholders back in backticks)."""
        shown = ast.unparse(node)
        for placeholder, name in self.quoted.items():
            shown = shown.replace(placeholder, quote_name(name))
        return shown

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(f"{message} (in expression {_clip(self.text)})")

    def unknown_column(self, name: str) -> ExpressionError:
        assert self.columns is not None
        listed = sorted(self.columns)
        near = difflib.get_close_matches(name, listed, n=3)
        hint = f"; did you mean {', '.join(quote_name(c) for c in near)}?" if near else ""
        more = f" and {len(listed) - 50} more" if len(listed) > 50 else ""
        return self.fail(f"Unknown column {name!r}{hint} Columns: {listed[:50]}{more}")

    def literal(self, node: ast.AST) -> Any:
        """The value of a literal (a constant, a negative number, or a list/tuple/set of them)."""
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or isinstance(value, bool | float | str | bytes):
                return value
            if isinstance(value, int):
                if not _INT_MIN <= value <= _UINT_MAX:
                    raise self.fail(f"Integer literal {_short(value)} is outside the 64-bit range")
                return value
            raise self.fail(f"Unsupported literal {self.show(node)!r}")
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub | ast.UAdd)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)
        ):
            # Folded so that -9223372036854775808 is INT64_MIN, not negate(2**63) out of range.
            value = -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
            if isinstance(value, int) and not _INT_MIN <= value <= _UINT_MAX:
                raise self.fail(f"Integer literal {_short(value)} is outside the 64-bit range")
            return value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [self.literal(element) for element in node.elts]
        raise self.fail(f"Expected a literal value, got {self.show(node)!r}")

    @staticmethod
    def is_literal(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) or (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub | ast.UAdd)
            and isinstance(node.operand, ast.Constant)
        )

    def scalar(self, node: ast.AST) -> pc.Expression:
        import pyarrow as pa
        import pyarrow.compute as pc

        value = self.literal(node)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 2**63:
            return pc.scalar(pa.scalar(value, pa.uint64()))
        return pc.scalar(value)

    def is_integer(self, expression: pc.Expression) -> bool:
        """Whether ``expression`` yields integers on this schema (False when the schema is unknown)."""
        import pyarrow as pa
        import pyarrow.dataset as pads

        if self.schema is None:
            return False
        empty = pa.Table.from_batches([], schema=self.schema)
        try:
            probed = pads.dataset(empty).to_table(columns={"v": expression}).schema.field("v").type
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
            raise self.fail(f"Cannot evaluate on columns {self.schema.names}: {err}") from None
        return pa.types.is_integer(probed)

    # ------------------------------------------------------------------------------------ compile
    def compile(self, node: ast.AST) -> pc.Expression:
        import pyarrow.compute as pc

        if isinstance(node, ast.Expression):
            return self.compile(node.body)
        if isinstance(node, ast.Name):
            return self.column(node)
        if isinstance(node, ast.Constant):
            return self.scalar(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            raise self.fail(f"A list is only allowed after 'in': {self.show(node)!r}")
        if isinstance(node, ast.BoolOp):
            values = [self.compile(v) for v in node.values]
            result = values[0]
            for value in values[1:]:
                result = (result & value) if isinstance(node.op, ast.And) else (result | value)
            return result
        if isinstance(node, ast.UnaryOp):
            if self.is_literal(node):  # -5 is a literal, not negate(5)
                return self.scalar(node)
            operand = self.compile(node.operand)
            if isinstance(node.op, ast.Not):
                return ~operand
            if isinstance(node.op, ast.USub):
                return pc.negate_checked(operand)
            if isinstance(node.op, ast.UAdd):
                return operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            function = _BINARY[type(node.op)]
            left, right = self.compile(node.left), self.compile(node.right)
            if function in (None, "divide_checked") and self.zero_division == "null":
                right = pc.if_else(pc.equal(right, pc.scalar(0)), pc.scalar(None), right)
            if function is None:
                return self.modulo(left, right)
            if function == "divide_checked":
                # '/' is true division, as in Python: integers divide as float64. The cast is a safe
                # one, so an integer beyond +-2**53 (not exactly a float64) is an error, not rounded.
                left = left.cast("float64")
            return getattr(pc, function)(left, right)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(f"Not allowed in an expression: {self.show(node)!r}")

    def column(self, node: ast.Name) -> pc.Expression:
        import pyarrow.compute as pc

        if node.id in self.quoted:
            name = self.quoted[node.id]
        elif self.source.isascii():
            name = node.id
        else:
            # Python's parser applies Unicode NFKC to identifiers ("ﬁ" reads as "fi", a fullwidth X as "X"), so
            # node.id may not be the name written; the source text is.
            name = ast.get_source_segment(self.source, node) or node.id
        if self.columns is not None and name not in self.columns:
            raise self.unknown_column(name)
        return pc.field(name)

    def modulo(self, left: pc.Expression, right: pc.Expression) -> pc.Expression:
        """``a % b`` with Python's sign rule (the result has the sign of ``b``), overflow-checked."""
        import pyarrow.compute as pc

        # No modulo kernel in Arrow. For integers divide_checked truncates towards zero; the
        # remainder a - q*b then has the sign of a and is moved to b's sign below. For floats the
        # quotient is floored first (floor() would convert integers to float64, losing exactness
        # past 2**53, so it is applied only where the operands are not both integers or when the
        # schema is not known).
        quotient = pc.divide_checked(left, right)
        if not (self.is_integer(left) and self.is_integer(right)):
            quotient = pc.floor(quotient)
        remainder = pc.subtract_checked(left, pc.multiply_checked(quotient, right))
        zero = pc.scalar(0)
        wrong_sign = (remainder != zero) & ((remainder < zero) != (right < zero))
        # if_else evaluates both branches, so the addition is made on every row: adding 0 where the
        # sign is right keeps -1 % INT64_MIN from overflowing in the branch that is not taken.
        return pc.add_checked(remainder, pc.if_else(wrong_sign, right, zero))

    def compare(self, node: ast.Compare) -> pc.Expression:
        import pyarrow as pa
        import pyarrow.compute as pc

        result: pc.Expression | None = None
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if self.is_literal(left) and (
                self.is_literal(right) or isinstance(right, ast.List | ast.Tuple | ast.Set)
            ):
                # Always the same answer for every row: almost surely a column name written as a
                # string ("Island Name" == 'Biscoe'), which would filter out everything, silently.
                raise self.fail(
                    f"{self.show(node)!r} compares two literals; to refer to a column write its name "
                    "in backticks, e.g. `Island Name` == 'Biscoe'"
                )
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                    raise self.fail("'in' needs a literal list, e.g. x in ['a', 'b']")
                values = self.literal(right)
                if not values:
                    raise self.fail("'in' needs a non-empty list")
                try:
                    value_set = pa.array(values)
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as err:
                    raise self.fail(
                        f"The list {self.show(right)!r} mixes types or is not flat: {err}"
                    ) from None
                part = pc.is_in(self.compile(left), value_set=value_set)
                if isinstance(op, ast.NotIn):
                    part = ~part
            elif isinstance(op, ast.Is | ast.IsNot):
                if not (isinstance(right, ast.Constant) and right.value is None):
                    raise self.fail("'is' is only allowed as 'is None' / 'is not None'")
                part = pc.is_null(self.compile(left))
                if isinstance(op, ast.IsNot):
                    part = ~part
            elif type(op) in _COMPARE:
                part = getattr(pc, _COMPARE[type(op)])(self.compile(left), self.compile(right))
            else:
                raise self.fail(f"Comparison not allowed: {self.show(node)!r}")
            result = part if result is None else (result & part)
            left = right
        assert result is not None
        return result

    def call(self, node: ast.Call) -> pc.Expression:
        import pyarrow.compute as pc

        if isinstance(node.func, ast.Name) and node.func.id in self.quoted:
            raise self.fail(f"{self.show(node.func)} is a column (backticks name columns), not a function")
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise self.fail(f"Unknown function {self.show(node.func)!r}; allowed: {sorted(_FUNCTIONS)}")
        if node.keywords:
            raise self.fail("Keyword arguments are not allowed in expressions")
        name = node.func.id
        function, least, most = _FUNCTIONS[name]
        if len(node.args) < least or (most is not None and len(node.args) > most):
            takes = f"{least}" if least == most else f"{least} to {most}" if most else f"at least {least}"
            raise self.fail(f"{name}() takes {takes} argument(s), got {len(node.args)}")
        if name in _PATTERN_FUNCTIONS:
            pattern = self.literal(node.args[1])
            if not isinstance(pattern, str):
                raise self.fail(
                    f"{name}() needs a string literal as its pattern, got {self.show(node.args[1])!r}"
                )
            return getattr(pc, function)(self.compile(node.args[0]), pattern=pattern)
        if name == "round":
            ndigits = self.literal(node.args[1]) if len(node.args) > 1 else 0
            if not isinstance(ndigits, int) or isinstance(ndigits, bool) or abs(ndigits) > _MAX_ROUND_DIGITS:
                raise self.fail(
                    f"round() needs an integer literal between -76 and 76 as digits, got {ndigits!r}"
                )
            return pc.round(self.compile(node.args[0]), ndigits=ndigits)
        return getattr(pc, function)(*[self.compile(a) for a in node.args])


def _short(value: int) -> str:
    # str() of a 5,000-digit int raises ValueError (Python's int/str conversion limit).
    return str(value) if abs(value) < 10**40 else f"with {value.bit_length()} bits"


def compile_expression(
    text: str, columns: Collection[str] | pa.Schema | None = None, *, zero_division: str = "error"
) -> pc.Expression:
    """
    Compile ``text`` into a ``pyarrow.compute.Expression``.

    :param text: the expression.
    :param columns: the known columns, as names or as a schema (then ``%`` on integers stays exact
        beyond 2**53). An unknown name is an error naming it, and a double-quoted string equal to a
        column name is refused (checked when given).
    :param zero_division: ``error`` (a zero divisor of ``/`` or ``%`` fails the evaluation, the ETL's
        rule) or ``null`` (the result is null on that row: a model's derive step, where one row
        must not fail a whole request).
    :raises ExpressionError: for anything the language does not allow.
    """
    import pyarrow as pa

    if not isinstance(text, str):
        raise ExpressionError(f"An expression is a string, got {type(text).__name__}")
    if zero_division not in ("error", "null"):
        raise ValueError(f"zero_division must be 'error' or 'null', got {zero_division!r}")
    if isinstance(columns, pa.Schema):
        return _compile(text, frozenset(columns.names), columns, zero_division)
    return _compile(text, None if columns is None else frozenset(columns), None, zero_division)


def referenced_columns(text: str) -> list[str]:
    """
    The column names ``text`` refers to, in order of first appearance (function names excluded).

    :raises ExpressionError: for anything :func:`compile_expression` refuses.
    """
    return list(_referenced_columns(text))


@functools.lru_cache(maxsize=256)  # a model's derive step asks at every prediction
def _referenced_columns(text: str) -> tuple[str, ...]:
    compile_expression(text)  # every check of the language first (length, syntax, functions)
    source, quoted = _substitute_quoted_names(text.strip())
    source = source.strip()
    tree = ast.parse(source, mode="eval")
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called]
    names: list[str] = []
    for node in sorted(found, key=lambda n: (n.lineno, n.col_offset)):
        if node.id in quoted:
            name = quoted[node.id]
        elif source.isascii():
            name = node.id
        else:  # as written: the parser normalizes identifiers (see _Compiler.column)
            name = ast.get_source_segment(source, node) or node.id
        if name not in names:
            names.append(name)
    return tuple(names)


# Steps compile the same text against the same schema for every batch; Expressions are immutable.
@functools.lru_cache(maxsize=256)
def _compile(
    text: str, columns: Collection[str] | None, schema: pa.Schema | None, zero_division: str = "error"
) -> pc.Expression:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"Expression is too long ({len(text)} characters, limit {MAX_LENGTH}): {_clip(text)}"
        )
    source, quoted = _substitute_quoted_names(text.strip())
    source = source.strip()  # a name in backticks at the start would be an indent
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        if "integer string conversion" in err.msg:  # Python's limit of 4,300 digits
            raise ExpressionError(f"Integer literal is outside the 64-bit range in {_clip(text)}") from None
        raise ExpressionError(
            f"Cannot parse expression {_clip(text)}: {err.msg[:300]}{_quote_hint(text, columns)}"
        ) from None
    except (ValueError, OverflowError) as err:  # e.g. NUL characters
        raise ExpressionError(f"Cannot parse expression {_clip(text)}: {str(err)[:300]}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(
            f"Expression is nested too deeply (over {MAX_DEPTH} levels): {_clip(text)}"
        ) from None
    _check_size(tree, text)
    compiler = _Compiler(text, source, quoted, columns, schema, zero_division)
    if columns is not None:
        _refuse_double_quoted_names(tree, compiler)
    return compiler.compile(tree)


def _quote_hint(text: str, columns: Collection[str] | None) -> str:
    """A hint when the text holds a column name that needs backticks, unquoted."""
    for name in sorted(columns or ()):
        if not name.isidentifier() and name in text and quote_name(name) not in text:
            return f"; a column name with spaces or punctuation goes in backticks: {quote_name(name)}"
    return ""


def _clip(text: str, limit: int = 200) -> str:
    """``repr(text)``, shortened: messages quote the expression, which may be 10,000 characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def _refuse_double_quoted_names(tree: ast.AST, compiler: _Compiler) -> None:
    """
    A double-quoted string whose text is a column name is an error, not a warning.

    In SQL, "Island Name" is the column; in Python it is a string. Taking it as a string gave a
    filter that kept 0 of 50,000 rows with the task green; a warning in a task log is read after
    the damage. The rare user who means the string writes it with single quotes, which is never
    ambiguous, so refusing costs them one character.
    """
    assert compiler.columns is not None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in compiler.columns:
            segment = ast.get_source_segment(compiler.source, node) or ""
            if segment.lstrip("rRuU").startswith('"'):
                raise compiler.fail(
                    f'"{node.value}" is a string in double quotes, and also the name of a column. '
                    f"Write the column as {quote_name(node.value)}, or the string in single quotes"
                )


def evaluate_column(
    data: pa.RecordBatch | pa.Table, text: str, *, zero_division: str = "error"
) -> pa.ChunkedArray:
    """The values of expression ``text`` for every row of ``data`` (``zero_division``: see :func:`compile_expression`)."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    expression = compile_expression(text, table.schema, zero_division=zero_division)
    with _data_errors(text):
        return pads.dataset(table).to_table(columns={"value": expression}).column("value")


def filter_rows(data: pa.RecordBatch | pa.Table, text: str) -> pa.Table:
    """The rows of ``data`` for which expression ``text`` is true (a null result drops the row)."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
    expression = compile_expression(text, table.schema)
    with _data_errors(text):
        return pads.dataset(table).to_table(filter=expression)


@contextlib.contextmanager
def _data_errors(text: str) -> Iterator[None]:
    """Arrow errors while evaluating become ExpressionErrors naming the expression."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        hint = ""
        if "overflow" in message.lower():
            hint = " (integer arithmetic is checked: cast the column to a wider type or to float64 first)"
        elif "divide by zero" in message.lower():
            hint = " (guard the divisor: a / if_else(b == 0, None, b) gives null where b is 0)"
        raise ExpressionError(f"Expression {_clip(text)} failed on the data: {message}{hint}") from error
