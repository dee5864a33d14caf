"""The import graph of scaling/: one way, no cycles, and the analysis side free of torch and training.

The graph is read from the source with `ast`: every `import`, including those inside functions (an import
deferred into a function is still a dependency, and a cycle through it is still a knot), and every
`import_module("scaling...")` with a literal name.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys

from helpers import REPO

PACKAGE = REPO / "scaling"
# The packages in import order: each imports only from those before it (and itself). "scaling" stands for the
# shared modules at the top level (errors, io, units, reference, shapes, ...), which import no package.
ANALYSIS_PACKAGES = (
    "scaling", "scaling.runs", "scaling.fitting", "scaling.study", "scaling.report", "scaling.cli",
)
# The training side imports only the shared modules; nothing of the analysis side imports it, except the one
# command that tokenises a user's text for training.
TRAINING_PACKAGE = "scaling.training"
ALLOWED_TRAINING_IMPORTS = {("scaling.cli.prepare", "scaling.training.data")}
TRAINING_PACKAGES = ("torch", "hydra", "omegaconf")


def module_names() -> dict[str, ast.Module]:
    """Every module of the package, by dotted name, parsed."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(), str(path))
    return modules


def imports_of(module: str, tree: ast.Module, known: set[str]) -> tuple[set[str], set[str], set[str]]:
    """(modules of the package, top-level names of other packages, names in the package that are no
    module of it) that `module` imports anywhere."""
    ours, theirs, missing = set(), set(), set()
    is_package = (PACKAGE / "/".join(module.split(".")[1:]) / "__init__.py").is_file()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in (or is)
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from scaling import hardware` imports the submodule; `from scaling.x import f` the module x
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        for name in names:
            if name in known:
                if name != module:
                    ours.add(name)
            elif name.split(".")[0] == "scaling":  # e.g. a module renamed since: found only when it runs
                missing.add(name)
            elif name:
                theirs.add(name.split(".")[0])
    return ours, theirs, missing


@functools.cache
def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    """Per module: the modules of the package it imports, the other packages, the missing modules."""
    modules = module_names()
    known = set(modules)
    graph, external, missing = {}, {}, {}
    for name, tree in modules.items():
        graph[name], external[name], missing[name] = imports_of(name, tree, known)
    return graph, external, missing


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: the shortest one through each module that is in one (the strongly connected
    components of the graph, by Tarjan's algorithm), each as the path of modules that closes it."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
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
            connect(v)
    found = []
    for component in components:  # the shortest cycle through each module of each component
        inside = set(component)
        for start in component:
            parent, todo = {start: None}, [start]
            while todo and start not in graph[todo[0]]:
                v = todo.pop(0)
                for w in sorted(graph[v] & inside):
                    if w not in parent:
                        parent[w] = v
                        todo.append(w)
            path = [todo[0]]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])
            cycle = [*reversed(path), start]
            if not any(set(cycle) == set(c) for c in found):
                found.append(cycle)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str | None]:
    """Every module `start` imports, directly or not, with the module that imports it (for the path)."""
    parent: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        v = todo.pop()
        for w in sorted(graph[v]):
            if w not in parent:
                parent[w] = v
                todo.append(w)
    return parent


def path_to(parent: dict[str, str | None], end: str) -> str:
    chain = [end]
    while parent[chain[-1]] is not None:
        chain.append(parent[chain[-1]])
    return " -> ".join(reversed(chain))


def package_of(module: str) -> str:
    """The subpackage a module belongs to ("scaling" for the shared top-level modules)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "scaling"


def sides() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(analysis modules, training modules): every module of the package, by side."""
    names = sorted(module_names())
    training = tuple(m for m in names if package_of(m) == TRAINING_PACKAGE)
    analysis = tuple(m for m in names if m not in training and m != "scaling.cli.prepare")
    return analysis, training


def test_import_graph_has_no_cycle():
    graph, _, missing = import_graph()
    assert "scaling.fitting.laws" in graph["scaling.fitting.procedure"]  # the parser sees the graph at all
    gone = [f"{m} imports {', '.join(sorted(names))}" for m, names in sorted(missing.items()) if names]
    assert not gone, "imports of modules that do not exist:\n" + "\n".join(gone)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_packages_import_one_way():
    graph, _, _ = import_graph()
    rank = {name: i for i, name in enumerate(ANALYSIS_PACKAGES)}
    wrong = []
    for module, imported in sorted(graph.items()):
        if module == "scaling":  # the package's lazy exports name every layer
            continue
        here = package_of(module)
        for other in sorted(imported):
            there = package_of(other)
            if here == there or (module, other) in ALLOWED_TRAINING_IMPORTS:
                continue
            if here == TRAINING_PACKAGE:
                ok = there == "scaling"
            else:
                ok = there != TRAINING_PACKAGE and rank[there] < rank[here]
            if not ok:
                wrong.append(f"{module} ({here}) imports {other} ({there})")
    assert not wrong, "imports against the package order:\n" + "\n".join(wrong)


def test_analysis_side_never_reaches_torch_or_training():
    graph, external, _ = import_graph()
    analysis, training = sides()
    problems = []
    for start in analysis:
        parent = reachable(graph, start)
        problems += [f"{path_to(parent, m)}" for m in sorted(parent) if m in training]
        problems += [
            f"{path_to(parent, m)} imports {package}"
            for m in sorted(parent)
            for package in TRAINING_PACKAGES
            if package in external[m]
        ]
    assert not problems, "the analysis side reaches the training side:\n" + "\n".join(sorted(set(problems)))


def test_training_side_never_reaches_fitting():
    graph, _, _ = import_graph()
    analysis, training = sides()
    problems = []
    for start in training:
        parent = reachable(graph, start)
        reached = [m for m in sorted(parent) if m in analysis and package_of(m) != "scaling"]
        problems += [path_to(parent, m) for m in reached]
    assert not problems, "the training side reaches the analysis side:\n" + "\n".join(problems)


def test_analysis_side_imports_without_torch():
    # what really runs: every analysis module and every subcommand's parser (`scaling prepare`'s brings
    # scaling.training.data, torch-free, and its package's empty __init__), in a fresh interpreter
    analysis, training = sides()
    forbidden = tuple(m for m in training if m not in ("scaling.training", "scaling.training.data"))
    code = (
        f"import sys, {', '.join(analysis)}; scaling.cli.build_parser(); "
        "from scaling import fit, allocate, predict, plan, FitResult, load_runs, UsageError; "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING_PACKAGES!r} or m in "
        f"{forbidden!r}); assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_trainer_imports_without_pandas():
    # every run of a sweep is a `scaling-train` process: the trainer pays for no analysis library
    code = (
        "import sys, scaling.training.trainer; "
        "bad = [m for m in ('pandas', 'scipy', 'matplotlib') if m in sys.modules]; assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_command_line_parser_loads_no_table_or_figure_library():
    # `scaling --help` and every command's start: the parser reads its defaults from scaling.defaults
    code = (
        "import sys, scaling.cli; scaling.cli.build_parser(); "
        "bad = [m for m in ('pandas', 'matplotlib', 'scipy.interpolate') if m in sys.modules]; "
        "assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_package_exports_are_the_functions():
    import scaling
    from scaling import FitResult, UsageError, allocate, fit, load_runs, plan, predict
    from scaling.errors import UsageError as usage_error
    from scaling.fitting.procedure import FitResult as fit_result
    from scaling.fitting.procedure import fit as fit_function
    from scaling.runs.table import load_runs as load_runs_function
    from scaling.study.allocation import allocate as allocate_function
    from scaling.study.planning import plan as plan_function
    from scaling.study.prediction import predict as predict_function

    assert fit is fit_function and allocate is allocate_function and predict is predict_function
    assert plan is plan_function and load_runs is load_runs_function
    assert FitResult is fit_result and UsageError is usage_error
    assert scaling.fit is fit and scaling.plan is plan  # the notebook spelling, `scaling.fit(...)`
    assert sorted(scaling.__all__) == sorted(
        ["FitResult", "UsageError", "allocate", "fit", "load_runs", "plan", "predict"]
    )
