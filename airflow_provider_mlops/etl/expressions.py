"""
A small, safe expression language compiled to vectorized ``pyarrow.compute`` expressions.

Used by filter and derive steps: ``"age >= 18 and country in ['FR', 'DE']"``,
``"monthly_charges * 12"``, ``"is_null(email) or lower(plan) == 'free'"``. The text is parsed with
Python's ``ast`` and only the nodes listed here are accepted: column names, literals, comparisons,
``and``/``or``/``not``, arithmetic, ``in``/``not in`` a literal list, and a fixed set of functions.
Nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import ast
import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.compute as pc


class ExpressionError(ValueError):
    """The expression uses something the language does not allow, or does not parse."""


# function name -> (pyarrow.compute function, number of arguments or None for any)
_FUNCTIONS: dict[str, tuple[str, int | None]] = {
    "is_null": ("is_null", 1),
    "is_valid": ("is_valid", 1),
    "not_null": ("is_valid", 1),
    "is_nan": ("is_nan", 1),
    "abs": ("abs", 1),
    "round": ("round", None),
    "floor": ("floor", 1),
    "ceil": ("ceil", 1),
    "sqrt": ("sqrt", 1),
    "ln": ("ln", 1),
    "log10": ("log10", 1),
    "lower": ("utf8_lower", 1),
    "upper": ("utf8_upper", 1),
    "strip": ("utf8_trim_whitespace", 1),
    "length": ("utf8_length", 1),
    "starts_with": ("starts_with", 2),
    "ends_with": ("ends_with", 2),
    "contains": ("match_substring", 2),
    "coalesce": ("coalesce", None),
    "if_else": ("if_else", 3),
    "year": ("year", 1),
    "month": ("month", 1),
    "day": ("day", 1),
    "day_of_week": ("day_of_week", 1),
    "hour": ("hour", 1),
    "min": ("min_element_wise", None),
    "max": ("max_element_wise", None),
}
# Functions whose trailing arguments are options, not expressions.
_OPTION_ARGS = {"starts_with": "pattern", "ends_with": "pattern", "contains": "pattern", "round": "ndigits"}

_COMPARE = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}
_BINARY = {
    ast.Add: "add",
    ast.Sub: "subtract",
    ast.Mult: "multiply",
    ast.Div: "divide",
    ast.Mod: None,
    ast.Pow: "power",
}


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError):
        raise ExpressionError(f"Expected a literal value, got {ast.unparse(node)!r}") from None


def _scalar(value: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(value, dt.datetime | dt.date):
        return pc.scalar(pa.scalar(value))
    return pc.scalar(value)


class _Compiler:
    def __init__(self, columns: set[str] | None) -> None:
        self.columns = columns

    def compile(self, node: ast.AST) -> pc.Expression:
        import pyarrow.compute as pc

        if isinstance(node, ast.Expression):
            return self.compile(node.body)
        if isinstance(node, ast.Name):
            if self.columns is not None and node.id not in self.columns:
                raise ExpressionError(f"Unknown column {node.id!r} (columns: {sorted(self.columns)})")
            if node.id in ("True", "False", "None"):
                return _scalar({"True": True, "False": False, "None": None}[node.id])
            return pc.field(node.id)
        if isinstance(node, ast.Constant):
            return _scalar(node.value)
        if isinstance(node, ast.BoolOp):
            values = [self.compile(v) for v in node.values]
            result = values[0]
            for value in values[1:]:
                result = (result & value) if isinstance(node.op, ast.And) else (result | value)
            return result
        if isinstance(node, ast.UnaryOp):
            operand = self.compile(node.operand)
            if isinstance(node.op, ast.Not):
                return ~operand
            if isinstance(node.op, ast.USub):
                return pc.negate(operand)
            if isinstance(node.op, ast.UAdd):
                return operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            function = _BINARY[type(node.op)]
            left, right = self.compile(node.left), self.compile(node.right)
            if function is None:  # a % b == a - floor(a / b) * b
                return pc.subtract(left, pc.multiply(pc.floor(pc.divide(left, right)), right))
            if function == "divide":
                left = left.cast("float64")
            return getattr(pc, function)(left, right)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ExpressionError(f"Not allowed in an expression: {ast.unparse(node)!r}")

    def _compare(self, node: ast.Compare) -> pc.Expression:
        import pyarrow as pa
        import pyarrow.compute as pc

        result: pc.Expression | None = None
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                values = _literal(right)
                if not isinstance(values, list | tuple | set):
                    raise ExpressionError("'in' needs a literal list, e.g. x in ['a', 'b']")
                part = pc.field(left.id) if isinstance(left, ast.Name) else self.compile(left)
                if isinstance(left, ast.Name) and self.columns is not None and left.id not in self.columns:
                    raise ExpressionError(f"Unknown column {left.id!r}")
                part = pc.is_in(part, value_set=pa.array(list(values)))
                if isinstance(op, ast.NotIn):
                    part = ~part
            elif isinstance(op, ast.Is | ast.IsNot):
                if not (isinstance(right, ast.Constant) and right.value is None):
                    raise ExpressionError("'is' is only allowed as 'is None' / 'is not None'")
                part = pc.is_null(self.compile(left))
                if isinstance(op, ast.IsNot):
                    part = ~part
            elif type(op) in _COMPARE:
                part = getattr(pc, _COMPARE[type(op)])(self.compile(left), self.compile(right))
            else:
                raise ExpressionError(f"Comparison not allowed: {ast.unparse(node)!r}")
            result = part if result is None else (result & part)
            left = right
        assert result is not None
        return result

    def _call(self, node: ast.Call) -> pc.Expression:
        import pyarrow.compute as pc

        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            name = ast.unparse(node.func)
            raise ExpressionError(f"Unknown function {name!r}; allowed: {sorted(_FUNCTIONS)}")
        if node.keywords:
            raise ExpressionError("Keyword arguments are not allowed in expressions")
        name = node.func.id
        function, arity = _FUNCTIONS[name]
        if arity is not None and len(node.args) != arity:
            raise ExpressionError(f"{name}() takes {arity} argument(s), got {len(node.args)}")
        if name in _OPTION_ARGS:
            first = self.compile(node.args[0])
            if name == "round":
                ndigits = int(_literal(node.args[1])) if len(node.args) > 1 else 0
                return pc.round(first, ndigits=ndigits)
            return getattr(pc, function)(first, pattern=str(_literal(node.args[1])))
        args = [self.compile(a) for a in node.args]
        return getattr(pc, function)(*args)


def compile_expression(text: str, columns: list[str] | set[str] | None = None) -> pc.Expression:
    """
    Compile ``text`` into a ``pyarrow.compute.Expression``.

    :param text: the expression.
    :param columns: the known columns; an unknown name is an error naming it (checked when given).
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"Cannot parse expression {text!r}: {err.msg}") from None
    return _Compiler(set(columns) if columns is not None else None).compile(tree)


def evaluate(batch: Any, expression: pc.Expression) -> Any:
    """Evaluate an expression against a record batch or table; returns an array (or a scalar)."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    result = pads.dataset(table).to_table(columns={"__value": expression})
    return result.column("__value").combine_chunks()
