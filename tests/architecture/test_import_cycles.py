"""No import cycles in ``axon_dagster/`` and ``edge/``.

The graph: one node per module, an edge A → B for every import of B written in A. ``from P import
name`` is an edge to ``P.name`` when that is a module, else to ``P``; only the named module, not
its parent packages (importing a submodule runs its package's ``__init__``, but counting that would
report every ``__init__`` that re-exports its own submodules as a cycle).

Counted on purpose, although they cannot break ``import`` at run time:

- imports inside functions and methods (deferred imports): moving an import into a function
  only hides a cycle from the interpreter; the two modules still need each other, so neither can be
  understood, tested or moved on its own, and a later refactor that hoists the import deadlocks.
  Deferring a *heavy or optional* dependency (rclpy, boto3, Dagster) is fine and never makes a cycle
  inside our packages;
- imports under ``if TYPE_CHECKING:``: a module whose annotations name another module's class
  depends on that module's design just the same. Break such a cycle with a Protocol or a small
  interface module that both import.

Each cycle is reported with each edge's file:line, so the import to cut is obvious.
"""

from __future__ import annotations

import ast

from architecture_source import Module, import_graph, modules


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan, recursive: the graph is a few hundred modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_a_cycle_through(c, graph) for c in sorted(components)]


def components_of(found: list[list[str]], graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """The modules tied up with each cycle (everything reachable both ways)."""
    def reach(start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for w in graph.get(todo.pop(), {}):
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen

    return [{v for v in reach(c[0]) if c[0] in reach(v)} for c in found]


def _a_cycle_through(component: list[str], graph: dict[str, dict[str, int]]) -> list[str]:
    """The shortest closed path from the component's first module back to itself (BFS)."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    return paths[v] + [start]
                if w in members and w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return component  # unreachable for a strongly connected component


def describe(cycle: list[str], graph: dict[str, dict[str, int]], paths: dict[str, str]) -> str:
    tied = sorted(components_of([cycle], graph)[0] - set(cycle))
    return " -> ".join(cycle) + (f"  (also tied in: {', '.join(tied)})" if tied else "") + "\n      " + "\n      ".join(
        f"{paths[a]}:{graph[a][b]} imports {b}" for a, b in zip(cycle, cycle[1:])
    )


def test_the_checker_counts_deferred_and_type_checking_imports_but_not_parent_packages():
    def mod(name: str, code: str, is_package: bool = False) -> Module:
        from pathlib import Path

        return Module(name, Path(name), is_package, ast.parse(code))

    acyclic = (
        mod("p", "from .a import A\nfrom .d import D\n", is_package=True),  # a package re-exporting: no cycle
        mod("p.a", "import p.b\n"),
        mod("p.b", "from p import c\n"),
        mod("p.c", "import json\n"),
        mod("p.d", "from . import c\n"),
    )
    assert cycles(import_graph(acyclic)) == []
    for closing in ("def f():\n    import p.a\n", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n"):
        graph = import_graph(acyclic[:3] + (mod("p.c", closing),) + acyclic[4:])
        assert cycles(graph) == [["p.a", "p.b", "p.c", "p.a"]], closing


def test_no_import_cycles():
    mods = modules()
    graph = import_graph(mods)
    paths = {m.name: m.relpath for m in mods}
    found = cycles(graph)
    assert not found, "import cycles (cut one import in each; move shared code down a layer):\n  " + "\n  ".join(
        describe(c, graph, paths) for c in found
    )
