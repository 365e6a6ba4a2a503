"""Only the settings modules read the process environment.

``axon_dagster/settings/`` (and the edge agent's own ``edge/axon_edge/settings.py``: robots stay
small) are the one place that touches ``os.environ``; every other module asks for a typed setting.
The check is on the syntax tree: any use of ``os.environ`` / ``os.environb`` / ``os.getenv`` /
``os.putenv`` / ``os.unsetenv`` (through any alias of ``os``), and any ``from os import`` of those
names, outside those modules fails, naming file:line. Writes count too: the settings package also
owns what a process sets for its children (``settings.environ.child_environ`` / ``export``).
Building the settings package's raw reader (``Env(...)``) elsewhere counts as well: a variable read
by name outside ``settings/`` is a setting with no declared home, whatever reads it.
"""

from __future__ import annotations

import ast

from architecture_source import modules

ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
ALLOWED_PREFIXES = ("axon_dagster.settings",)
ALLOWED_MODULES = {"axon_edge.settings"}


def allowed(module_name: str) -> bool:
    return module_name in ALLOWED_MODULES or any(
        module_name == p or module_name.startswith(p + ".") for p in ALLOWED_PREFIXES
    )


def environment_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each use of the process environment in ``tree``."""
    os_aliases = {"os"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_aliases |= {a.asname or a.name for a in node.names if a.name == "os"}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "posix", "nt"):
            uses += [(node.lineno, f"from {node.module} import {a.name}") for a in node.names if a.name in ENV_NAMES]
        elif isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Name) and node.func.id == "Env")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "Env")
        ):
            uses.append((node.lineno, "Env(...)"))
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ENV_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id in os_aliases
        ):
            uses.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return sorted(set(uses))


def test_the_checker_sees_every_form_of_environment_access():
    code = (
        "import os\nimport os as o\nfrom os import getenv\n"
        "a = os.environ.get('X')\nb = o.getenv('Y')\nos.environ['Z'] = '1'\nc = {**os.environ}\n"
        "def f(environ=None):\n    return environ\n"
        "from axon_dagster.settings import Env\nd = Env().text('AXON_X')\n"
    )
    assert [line for line, _ in environment_uses(ast.parse(code))] == [3, 4, 5, 6, 7, 11]


def test_only_the_settings_modules_read_the_environment():
    offenders = [
        f"{m.relpath}:{line}: {what}"
        for m in modules()
        if not allowed(m.name)
        for line, what in environment_uses(m.tree)
    ]
    assert not offenders, (
        "the process environment is read only in axon_dagster/settings/ (and edge/axon_edge/settings.py); "
        "add a typed setting there and use it instead of:\n  " + "\n  ".join(offenders)
    )
