"""
The provider supports every Airflow 3 minor from 3.0 (issue #22), and stays that way:

- every Airflow API that moved between 3.0 and 3.3 is imported through
  ``airflow.providers.common.compat.sdk`` (provider, example DAGs, tests), or through
  tests/airflow_compat.py for what that shim does not carry (``DagBag``, the UI's secret-name rule);
- the example DAGs take their timetables from ``airflow.sdk`` only inside a ``try`` that falls back to
  ``airflow.timetables.*`` (the Task SDK has them from 3.2);
- the pins for Airflow's own bugs (tests/runtime/constraints/) never reach the provider's dependencies;
- docs/installation.rst's "Tested with" table names the patch each tox environment runs.

Whether each minor really runs is tests/runtime/test_installs.py (integration tier); these are the
cheap checks that keep a change from quietly tying the code to one minor again.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "tests" / "runtime" / "constraints"

# Module -> why it may not be imported directly (its contents moved between Airflow 3.0 and 3.3).
MOVED_MODULES = {
    "airflow.sdk.exceptions": "the exceptions are in airflow.exceptions before 3.1/3.2",
    "airflow.sdk.configuration": "conf is airflow.configuration before 3.2",
    "airflow.sdk.types": "TaskInstanceKey is airflow.models.taskinstancekey before 3.1",
    "airflow.sdk.execution_time.xcom": "XCom moved",
    "airflow.sdk.log": "mask_secret is in airflow.sdk.execution_time.secrets_masker before 3.2",
    "airflow.dag_processing.dagbag": "DagBag is airflow.models.dagbag before 3.2",
    "airflow._shared.secrets_masker": "from 3.2 only",
}
# Names that moved into airflow.sdk after 3.0.
MOVED_FROM_SDK = {"BaseHook"}
# Timetables the Task SDK has from 3.2: imported from airflow.sdk only inside a try with a fallback.
SDK_32_TIMETABLES = {
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "AssetOrTimeSchedule",
    "DeltaTriggerTimetable",
}
# Files allowed to import the moved paths: each falls back itself (try/except ImportError).
ALLOWED = {
    "tests/airflow_compat.py",
    "airflow_provider_mlops/scaffold/templates/common/tests/dags/test_dag_integrity.py",
}


def _python_files(root: Path = ROOT) -> list[Path]:
    found = []
    for folder in ("airflow_provider_mlops", "example_dags", "tests", "benchmarks"):
        found.extend(p for p in (root / folder).rglob("*.py") if ".tox" not in p.parts)
    return sorted(found)


def _guarded(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside a ``try`` whose handlers catch ImportError."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            h.type is not None and "ImportError" in ast.unparse(h.type) for h in node.handlers
        ):
            for inner in node.body:
                lines.update(n.lineno for n in ast.walk(inner) if isinstance(n, ast.ImportFrom | ast.Import))
    return lines


def moved_imports(root: Path = ROOT) -> list[str]:
    """``path:line: import`` for each import of a moved Airflow API outside the shim (empty: none)."""
    found = []
    for path in _python_files(root):
        rel = path.relative_to(root).as_posix()
        if rel in ALLOWED:
            continue
        tree = ast.parse(path.read_text(), filename=rel)
        guarded = _guarded(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {alias.name for alias in node.names}
                bad = node.module in MOVED_MODULES or (
                    node.module == "airflow.sdk" and names & MOVED_FROM_SDK
                )
                if node.module == "airflow.sdk" and names & SDK_32_TIMETABLES and node.lineno not in guarded:
                    bad = True
            elif isinstance(node, ast.Import):
                bad = any(alias.name in MOVED_MODULES for alias in node.names)
            else:
                continue
            if bad:
                found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_moved_airflow_apis_are_imported_through_the_compat_shim() -> None:
    found = moved_imports()
    assert not found, (
        "imports tied to one Airflow minor: use airflow.providers.common.compat.sdk (provider, tests) or "
        "tests/airflow_compat.py, and a try/except ImportError fallback for airflow.sdk's timetables:\n"
        + "\n".join(found)
    )


def test_the_example_dags_fall_back_to_airflow_timetables() -> None:
    for name in ("etl_daily.py", "train_model.py"):
        tree = ast.parse((ROOT / "example_dags" / name).read_text())
        fallbacks = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airflow.timetables.")
            for alias in node.names
        }
        from_sdk = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "airflow.sdk"
            for alias in node.names
        }
        assert from_sdk & SDK_32_TIMETABLES, name
        assert from_sdk & SDK_32_TIMETABLES == fallbacks, (name, from_sdk, fallbacks)


def _constraint_files() -> list[Path]:
    files = sorted(CONSTRAINTS.glob("*.txt"))
    assert len(files) >= 4, files
    return files


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def test_pins_for_airflows_own_bugs_stay_out_of_the_provider_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for reqs in project["optional-dependencies"].values() for r in reqs]
    declared_names = {r.name.lower() for r in declared}
    pins = {r.name.lower() for path in _constraint_files() for r in _requirements(path)} - {"apache-airflow"}
    assert {"fastapi", "svcs"} <= pins, pins
    assert not pins & declared_names, (
        f"a tox environment's pin leaked into pyproject.toml: {pins & declared_names}"
    )
    airflow = next(r for r in declared if r.name == "apache-airflow")
    assert str(airflow.specifier) == ">=3.0.0", airflow
    compat = next(r for r in declared if r.name == "apache-airflow-providers-common-compat")
    assert str(compat.specifier) == ">=1.22.0", compat


def test_docs_table_names_the_patch_each_environment_runs() -> None:
    text = (ROOT / "docs" / "installation.rst").read_text()
    section = text[text.index("Tested with") :]
    section = section[: section.index("\n\n\n")] if "\n\n\n" in section else section
    tox = (ROOT / "tox.ini").read_text()
    for path in _constraint_files():
        assert f"constraints = tests/runtime/constraints/{path.name}" in tox, path.name
        for req in _requirements(path):
            if req.name == "apache-airflow" and str(req.specifier).startswith("=="):
                patch = str(req.specifier)[2:]
                assert re.search(rf"^\s*{re.escape(patch[:3])}\s+{re.escape(patch)}\b", section, re.M), (
                    f"docs/installation.rst 'Tested with' has no row for {patch} ({path.name})"
                )
            elif req.name != "apache-airflow":
                assert f"{req.name}{req.specifier}" in text, (
                    f"docs/installation.rst does not name the pin {req}"
                )
