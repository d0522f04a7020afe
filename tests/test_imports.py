"""Every module imports on its own, in a fresh interpreter (no import cycles, no hidden order)."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pretroost

ROOT = Path(pretroost.__file__).parent
_SPEC = importlib.util.spec_from_file_location(
    "archmetrics", Path(__file__).resolve().parents[1] / "tools" / "archmetrics.py"
)
assert _SPEC is not None and _SPEC.loader is not None
archmetrics = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(archmetrics)


def _modules() -> list[str]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def _module_level_imports(module: str) -> set[str]:
    """pretroost modules imported at module level (not inside functions) by ``module``."""
    path = ROOT.parent / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pretroost"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pretroost")}
    return found


def test_no_module_level_import_cycles() -> None:
    graph = {m: {d for d in _module_level_imports(m) if d in _modules()} for m in _modules()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            assert state.get(d) != 1, f"import cycle: {' -> '.join([*stack, m, d])}"
            if d not in state:
                visit(d, [*stack, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    """An import written inside a function is still an edge: no cycle hides there."""
    graph = archmetrics.import_graph(ROOT.parent, nested=True)
    knot = archmetrics.largest_scc(graph)
    assert len(knot) == 1, f"import cycle through {knot}"


def test_few_imports_inside_functions() -> None:
    """Outside cli/ and sklearn.py (lazy for start-up time), at most 10 pretroost imports sit
    inside functions, each with a comment saying why (start-up time or an optional dependency)."""
    found = archmetrics.indented_imports(ROOT.parent)
    assert len(found) <= 10, found
    for module, line, _ in found:
        path = ROOT.parent / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        lines = path.read_text().splitlines()
        above = "\n".join(lines[max(0, line - 4) : line])
        assert "#" in above, f"{module}:{line}: say why this import is inside a function"


def test_experiment_modules_do_not_import_each_other_in_a_cycle() -> None:
    """bench imports report; report and the modules it is made of (scores, prediction_averages,
    plots, encoder_probe) read strategy names from ``strategies``, never bench or report."""
    for name in ("report", "scores", "prediction_averages", "plots", "encoder_probe"):
        text = (ROOT / "experiment" / f"{name}.py").read_text()
        assert "from pretroost.experiment.bench import" not in text, name
        if name != "report":
            assert "from pretroost.experiment.report import" not in text, name


def test_moved_modules_import_alone() -> None:
    """The experiment and CLI modules (moved or split), each in a fresh interpreter."""
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    moved = [m for m in _modules() if m.startswith(("pretroost.experiment", "pretroost.cli"))]
    for module in [*moved, "pretroost.folds", "pretroost.evaluation.matbench", "pretroost.hub"]:
        subprocess.run([sys.executable, "-c", code, module], check=True, capture_output=True)


def test_results_store_is_torch_free() -> None:
    code = "import sys, pretroost.results; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"
