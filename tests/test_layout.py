"""The house's rules, read from the source itself (no module is imported): imports run one way,
from the motion-data layer up to the tools; no import loops; the task reaches engines only
through the seam; no file or function outgrows what a reader can hold."""
import ast
import glob
import os

import pytest

from poselib_utils.repository import REPO_ROOT

# Bottom to top: a module may import project modules of its own layer or of those below.
LAYERS = ("poselib_utils", "tasks", "tools", "train", "benchmarks")
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


def source_files(include_tests: bool = False):
    tops = LAYERS + (("tests",) if include_tests else ())
    found = []
    for top in tops:
        path = os.path.join(REPO_ROOT, top)
        found += [path + ".py"] if os.path.isfile(path + ".py") else glob.glob(
            os.path.join(path, "**", "*.py"), recursive=True)
    return sorted(f for f in found if os.sep + "." not in os.path.relpath(f, REPO_ROOT))


def module_name(path: str) -> str:
    rel = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def project_imports(path: str):
    """Project modules ``path`` imports anywhere in it (top level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(node.module + "." + alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] in LAYERS}


def import_graph():
    modules = {module_name(f): f for f in source_files()}
    graph = {}
    for name, path in modules.items():
        # "from pkg import sub" names a module when pkg/sub.py exists, otherwise a name in pkg
        graph[name] = {n if n in modules else n.rsplit(".", 1)[0] for n in project_imports(path)} - {name}
        graph[name] &= set(modules)
    return graph


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_imports_run_from_the_motion_data_up_to_the_tools():
    upward = sorted("{} -> {}".format(m, d) for m, deps in import_graph().items() for d in deps
                    if layer(d) > layer(m))
    assert not upward, "imports from a lower layer up to a higher one:\n" + "\n".join(upward)


def test_tools_and_train_do_not_import_each_other():
    graph = import_graph()
    crossing = sorted("{} -> {}".format(m, d) for m, deps in graph.items() for d in deps
                      if {m.split(".")[0], d.split(".")[0]} == {"tools", "train"})
    assert not crossing


def test_no_import_loops():
    graph = import_graph()
    state = {}
    loops = []

    def visit(node, trail):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                loops.append(" -> ".join(trail[trail.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, trail + [dep])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not loops, "import loops:\n" + "\n".join(loops)


def test_the_task_reaches_engines_only_through_the_seam():
    """The task and everything it builds on import the engine package (factory and interface),
    never an engine module: a machine with MuJoCo alone never imports isaacgym or warp."""
    engine_modules = {"tasks.engines.mujoco_engine", "tasks.engines.mujoco_warp_engine",
                      "tasks.engines.isaacgym_engine"}
    graph = import_graph()
    leaks = sorted("{} -> {}".format(m, d) for m, deps in graph.items() for d in deps & engine_modules
                   if not m.startswith("tasks.engines"))
    assert not leaks


def imported_packages(path: str):
    """Top-level packages ``path`` imports, project or not."""
    tree = ast.parse(open(path).read())
    return {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
            for alias in node.names} | {node.module.split(".")[0] for node in ast.walk(tree)
                                        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}


def test_poselib_utils_needs_no_torch():
    """The motion-data layer runs where only numpy, scipy and MuJoCo are installed."""
    users = [module_name(f) for f in source_files() if module_name(f).startswith("poselib_utils")
             and "torch" in imported_packages(f)]
    assert not users


@pytest.mark.parametrize("path", source_files(include_tests=True), ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_files_and_functions_stay_readable(path):
    source = open(path).read()
    assert source.count("\n") <= MAX_FILE_LINES
    long_functions = ["{} ({} lines)".format(node.name, node.end_lineno - node.lineno + 1)
                      for node in ast.walk(ast.parse(source))
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    if not os.path.relpath(path, REPO_ROOT).startswith("tests"):
        assert not long_functions
