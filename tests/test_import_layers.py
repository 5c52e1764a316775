"""
The layers of docs/architecture.md and no import cycle, checked in the default test run (issue #25).

The contracts live in pyproject.toml (``[tool.importlinter]``); ``./dev lint`` runs them too.
grimp reads every import statement, those inside functions included (a cycle through a function-level
import is a cycle when the function runs); imports under ``if TYPE_CHECKING:`` never run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_mlops"


def test_the_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _cycles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    return [
        (module, imported)
        for module in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if graph.chain_exists(importer=imported, imported=module)
    ]


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph(PACKAGE, exclude_type_checking_imports=True)
    assert _cycles(graph) == [], "import cycles (module -> imported, and a chain back)"


def test_a_function_level_import_cycle_is_seen(tmp_path: Path) -> None:
    """The check could fail: two modules importing each other inside functions form a cycle."""
    package = tmp_path / "cyclic_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from cyclic_probe import b\n")
    (package / "b.py").write_text("def g():\n    from cyclic_probe.a import f\n")
    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("cyclic_probe", exclude_type_checking_imports=True, cache_dir=None)
    finally:
        sys.path.remove(str(tmp_path))
    assert _cycles(graph) == [("cyclic_probe.a", "cyclic_probe.b"), ("cyclic_probe.b", "cyclic_probe.a")]
