"""
One registry vocabulary: every ``mlops.*`` tag key is spelled once (``ml/tags.py``) and only the
hooks talk to MLflow's client (issue #25). A new literal or a direct client call elsewhere fails here,
naming the file and the line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airflow_provider_mlops"
TAGS_HOME = PACKAGE / "ml" / "tags.py"
# The registry clients: the hooks, and the trusted loader, which reads versions and tags through the
# client it is given (the hook's, or mlops-serve's own in its separate process).
CLIENT_HOMES = (PACKAGE / "hooks", PACKAGE / "ml" / "serialization.py")
# Not this issue's: the model server (a process of its own, with its own client) and the demo's
# report reader. They use the tag constants like everything else.
CLIENT_ELSEWHERE = (PACKAGE / "serving", PACKAGE / "demo")
# A registry tag key: "mlops." then a key ("mlops.data-profile" is a JSON schema's name, not a tag).
TAG_KEY = re.compile(r"^mlops\.[a-z0-9_]+(\.[a-z0-9_]*)*$")
CLIENT_METHODS = frozenset(
    {
        "get_model_version",
        "get_model_version_by_alias",
        "set_model_version_tag",
        "delete_model_version_tag",
        "set_registered_model_alias",
        "delete_registered_model_alias",
        "get_registered_model",
        "set_registered_model_tag",
        "delete_registered_model_tag",
        "search_model_versions",
        "search_registered_models",
        "update_model_version",
        "delete_model_version",
        "create_model_version",
    }
)


def _python_files() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *(ROOT / "example_dags").rglob("*.py")])


def _under(path: Path, homes: tuple[Path, ...]) -> bool:
    return any(path == home or home in path.parents for home in homes)


def _tag_literals(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            head = node.values[0] if node.values else None
            if isinstance(head, ast.Constant) and str(head.value).startswith("mlops."):
                found.append((node.lineno, f"f-string {head.value!r}..."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and TAG_KEY.match(node.value):
            found.append((node.lineno, node.value))
    return found


def _client_uses(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Name) and node.id == "MlflowClient") or (
            isinstance(node, ast.Attribute) and node.attr == "MlflowClient"
        ):
            found.append((node.lineno, "MlflowClient"))
        elif isinstance(node, ast.alias) and node.name == "MlflowClient":
            found.append((getattr(node, "lineno", 0), "import MlflowClient"))
        elif isinstance(node, ast.Attribute) and node.attr in CLIENT_METHODS:
            found.append((node.lineno, f".{node.attr}()"))
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "client"
            and (
                (isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "MlflowHook")
                or (isinstance(node.value, ast.Name) and "mlflow" in node.value.id.lower())
                or (isinstance(node.value, ast.Name) and node.value.id == "hook")
            )
        ):
            found.append((node.lineno, "the MlflowHook's client"))
    return found


def test_every_mlops_tag_key_is_spelled_once_in_ml_tags() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in _python_files()
        # datasets/delta.py names its own Delta commit-info keys (table metadata, not registry tags)
        if path not in (TAGS_HOME, PACKAGE / "datasets" / "delta.py")
        for line, text in _tag_literals(ast.parse(path.read_text(), str(path)))
    ]
    assert not offenders, "mlops.* tag keys belong in airflow_provider_mlops/ml/tags.py:\n" + "\n".join(
        offenders
    )


def test_only_the_hooks_talk_to_the_mlflow_client() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in _python_files()
        if not _under(path, CLIENT_HOMES + CLIENT_ELSEWHERE)
        for line, text in _client_uses(ast.parse(path.read_text(), str(path)))
    ]
    assert not offenders, "go through MlflowHook's methods instead:\n" + "\n".join(offenders)


def test_the_checks_find_what_they_look_for() -> None:
    """The scanners flag a literal key and each form of a direct client call (the test could fail)."""
    sample = ast.parse(
        "from mlflow.tracking import MlflowClient\n"
        "tags = {'mlops.sha256': x, f'mlops.{k}': y, 'mlops.data-profile': z}\n"
        "MlflowHook(c).client.get_run(r)\n"
        "hook.set_registered_model_alias(n, a, v)\n"
    )
    assert [text for _, text in _tag_literals(sample)] == ["mlops.sha256", "f-string 'mlops.'..."]
    uses = {text for _, text in _client_uses(sample)}
    assert uses == {"import MlflowClient", "the MlflowHook's client", ".set_registered_model_alias()"}
