"""Measures the package's structure: the import knot, function-level imports, module and function sizes.

``python tools/archmetrics.py [SRC]`` prints one line per measure (SRC defaults to this checkout's
src/). tests/test_imports.py reuses :func:`import_graph` and :func:`indented_imports`.

- knot: files in the largest strongly connected component of the graph of pretroost imports,
  counting imports inside functions too;
- indented: imports of pretroost modules written inside a function or class body, outside cli/ and
  sklearn.py (those two load lazily for start-up time);
- largest module / function: lines;
- results_pulls_torch: whether ``import pretroost.results`` imports torch (fresh interpreter).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

LAZY_OK = ("pretroost.cli", "pretroost.sklearn", "pretroost")  # start-up time: lazy by design


def modules(src: Path) -> dict[str, Path]:
    root = src / "pretroost"
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _targets(node: ast.AST, module: str, is_pkg: bool, known: set[str]) -> set[str]:
    """pretroost modules named by one import statement (``from a import b`` counts a.b if a module)."""
    names: set[str] = set()
    if isinstance(node, ast.Import):
        names = {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            pkg = module.split(".") if is_pkg else module.split(".")[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join([*pkg, *([base] if base else [])])
        subs = {f"{base}.{a.name}" for a in node.names}
        names = {n for n in subs if n in known} or {base}
    found = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name.startswith("pretroost"):
            found.add(name)
    return found


def _walk(tree: ast.Module) -> list[tuple[ast.AST, bool]]:
    """Every import statement with whether it sits inside a function or class body."""
    out: list[tuple[ast.AST, bool]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                out.append((child, nested))
            inner = nested or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
            )
            visit(child, inner)

    visit(tree, False)
    return out


def _is_type_checking(tree: ast.Module) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (not run, so not part of the graph)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    lines.add(sub.lineno)
    return lines


def import_graph(src: Path, nested: bool = True) -> dict[str, set[str]]:
    """module → pretroost modules it imports (at module level, and inside functions if ``nested``),
    as import-linter's graph has them: ``from a.b import c`` names module ``a.b.c`` when it is one,
    else ``a.b``; the parent packages Python initialises on the way are not edges."""
    mods = modules(src)
    known = set(mods)
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        skip = _is_type_checking(tree)
        deps: set[str] = set()
        for node, inside in _walk(tree):
            if node.lineno in skip or (inside and not nested):
                continue
            deps |= _targets(node, mod, path.name == "__init__.py", known)
        deps &= known
        deps.discard(mod)
        graph[mod] = deps
    return graph


def largest_scc(graph: dict[str, set[str]]) -> list[str]:
    """Tarjan's algorithm (iterative); the largest strongly connected component, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    best: list[str] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > len(best):
                        best = sorted(comp)
    return best


def indented_imports(src: Path) -> list[tuple[str, int, str]]:
    """(module, line, statement) of pretroost imports inside functions, outside cli/ and sklearn.py."""
    mods = modules(src)
    out = []
    for mod, path in mods.items():
        if mod == "pretroost" or mod.startswith(LAZY_OK[:2]):
            continue
        tree = ast.parse(path.read_text())
        for node, inside in _walk(tree):
            if inside and _targets(node, mod, path.name == "__init__.py", set(mods)):
                out.append((mod, node.lineno, ast.unparse(node)))
    return out


def largest_module_and_function(src: Path) -> tuple[tuple[int, str], tuple[int, str]]:
    big_mod = (0, "")
    big_fn = (0, "")
    for mod, path in modules(src).items():
        text = path.read_text()
        big_mod = max(big_mod, (len(text.splitlines()), mod))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                big_fn = max(big_fn, (n, f"{mod}.{node.name}"))
    return big_mod, big_fn


def results_pulls_torch(src: Path) -> bool:
    code = "import sys; import pretroost.results; print('torch' in sys.modules)"
    env_path = str(src)
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {env_path!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().endswith("True")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [a for a in args if not a.startswith("-")]
    src = Path(paths[0]) if paths else Path(__file__).resolve().parents[1] / "src"
    knot = largest_scc(import_graph(src))
    print(f"knot: {len(knot)} files: {' '.join(m.removeprefix('pretroost.') for m in knot)}")
    found = indented_imports(src)
    print(f"indented pretroost imports outside cli/ and sklearn.py: {len(found)}")
    if "-v" in args:
        for mod, line, stmt in found:
            print(f"  {mod}:{line}: {stmt}")
    (mn, mname), (fn, fname) = largest_module_and_function(src)
    print(f"largest module: {mname} {mn} lines; largest function: {fname} {fn} lines")
    print(f"import pretroost.results pulls torch: {results_pulls_torch(src)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
