"""The house's structure, read from the source (ast, nothing imported): no import circles between
playground's modules, the heavy libraries on their own floor (gradio only in playground/ui, torch and
transformers only in playground/backends), the page imported only by the entry points, and the page
reaching models and the engine only through the run service.

What counts as an import: every `import` / `from ... import` statement of a module, wherever it sits:
at module level, inside a function, or under `if TYPE_CHECKING:`. An import moved into a function or
under TYPE_CHECKING still makes one module depend on the other; it only fails later (at the first
call) or in the type checker instead of at start-up. A circle closed that way is still a circle: the
nine ui modules of issue 21 were. `from a.b import c` is an import of the module a.b.c when there is
one, else of a.b. The package `__init__` Python runs on the way to a submodule is not counted: a
package may import its own submodules (playground/report does, in a function) without every
submodule's import of a sibling closing a circle through it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "playground"
# Where each library may be imported (a module of that package or below it).
FLOORS = {"gradio": "playground.ui", "torch": "playground.backends", "transformers": "playground.backends"}
# The only modules outside playground/ui that may import the page: the command line that serves it.
ENTRY_POINTS = ("playground.__main__", "playground.cli")
# What the page reaches only through the run service (playground/service.py): models and the engine.
# A type named for an annotation (under TYPE_CHECKING) is no call, and is allowed.
BEHIND_THE_SERVICE = ("playground.backends", "playground.engine")


@dataclass(frozen=True)
class Import:
    """One imported module (absolute dotted name), the line of the statement, and whether it is only
    for the type checker (under `if TYPE_CHECKING:`)."""

    module: str
    line: int
    typing_only: bool = False


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the playground package, by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_in(source: str, module: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every import statement in the source, anywhere in it, as absolute module names. `known`: the
    project's modules, to tell `from pkg import submodule` from `from module import name`."""
    tree = ast.parse(source)
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block)
                   for stmt in block.body for n in ast.walk(stmt)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno, id(node) in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, module, is_package)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(sub if sub in known else base, node.lineno, id(node) in typing_only))
    return found


def _is_type_checking(block: ast.If) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    test = block.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(name: str, level: int, module: str, is_package: bool) -> str:
    """A relative import's module as an absolute name (`from . import x` in a.b is a)."""
    if not level:
        return name
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, name] if name else parts)


def owning_module(name: str, known: set[str]) -> str:
    """The project module an imported name lives in ('' for another library's)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def import_graph() -> dict[str, dict[str, int]]:
    """For each playground module: the playground modules it imports, each with a line that does."""
    found = modules()
    known = set(found)
    graph: dict[str, dict[str, int]] = {}
    for name, path in found.items():
        edges: dict[str, int] = {}
        for imp in imports_in(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", known):
            target = owning_module(imp.module, known)
            if target and target != name:
                edges.setdefault(target, imp.line)
        graph[name] = edges
    return graph


def circles(graph: dict[str, dict[str, int]] | dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other round a circle (Tarjan's strongly connected
    components of two or more), each sorted, iteratively (no recursion limit on a deep chain)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next((t for t in targets if t in graph), None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph[target])))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def describe(group: list[str], graph: dict[str, dict[str, int]]) -> str:
    """Each import that keeps the circle closed: `a imports b (a.py:12)`."""
    lines = []
    for module in group:
        for target, line in sorted(graph[module].items()):
            if target in group:
                lines.append(f"  {module} imports {target} ({modules()[module].relative_to(ROOT)}:{line})")
    return "\n".join(lines)


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


# -- the checks ------------------------------------------------------------------------------------


def test_no_import_circles() -> None:
    graph = import_graph()
    found = circles(graph)
    assert not found, "import circles:\n" + "\n\n".join(describe(group, graph) for group in found)


def test_libraries_stay_on_their_floor() -> None:
    """gradio only in playground/ui; torch and transformers only in playground/backends."""
    found = modules()
    known = set(found)
    wrong = []
    for name, path in found.items():
        for imp in imports_in(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", known):
            library = imp.module.split(".")[0]
            floor = FLOORS.get(library)
            if floor and not inside(name, floor):
                wrong.append(f"{path.relative_to(ROOT)}:{imp.line} imports {imp.module} (only {floor} may)")
    assert not wrong, "\n".join(wrong)


def test_only_the_entry_points_import_the_page() -> None:
    """The page is the top floor: the service, the engine and the rest never import it."""
    graph = import_graph()
    wrong = [f"{module} imports {target} (line {line})"
             for module, edges in graph.items() for target, line in edges.items()
             if inside(target, "playground.ui") and not inside(module, "playground.ui")
             and not any(inside(module, entry) for entry in ENTRY_POINTS)]
    assert not wrong, "\n".join(wrong)


def test_the_page_reaches_models_and_the_engine_only_through_the_service() -> None:
    found = modules()
    known = set(found)
    wrong = []
    for name, path in found.items():
        if not inside(name, "playground.ui"):
            continue
        for imp in imports_in(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", known):
            if not imp.typing_only and any(inside(imp.module, floor) for floor in BEHIND_THE_SERVICE):
                wrong.append(f"{path.relative_to(ROOT)}:{imp.line} imports {imp.module}: ask RunService")
    assert not wrong, "\n".join(wrong)


# -- the checker itself (so that the checks above can fail) -----------------------------------------


def test_imports_in_functions_and_for_type_checking_count() -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import gradio as gr\n"
        "from . import sibling\n"
        "from .. import html as H\n"
        "from pkg.sub import thing\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.sub.app import Page\n"
        "def build():\n"
        "    from pkg.sub.other import build_other\n"
    )
    known = {"pkg", "pkg.sub", "pkg.sub.mod", "pkg.sub.sibling", "pkg.html", "pkg.sub.app", "pkg.sub.other"}
    got = [(i.module, i.line, i.typing_only) for i in imports_in(source, "pkg.sub.mod", False, known)]
    assert sorted(got) == sorted([
        ("__future__", 1, False), ("typing", 2, False), ("gradio", 3, False), ("pkg.sub.sibling", 4, False),
        ("pkg.html", 5, False), ("pkg.sub", 6, False), ("pkg.sub.app", 8, True), ("pkg.sub.other", 10, False),
    ])


def test_circles_are_found_and_a_chain_is_not_one() -> None:
    chain = {"a": {"b"}, "b": {"c"}, "c": set()}
    assert circles(chain) == []
    looped = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(circles(looped)) == [["a", "b", "c"], ["d", "e"]]


def test_a_long_chain_needs_no_recursion() -> None:
    chain = {f"m{i}": {f"m{i + 1}"} for i in range(5000)} | {"m5000": {"m0"}}
    assert len(circles(chain)[0]) == 5001
