"""The rooms and their doors (README, "How it fits together"): no service imports another or the
simulation harness, `shared` imports neither, and every service has the same files for the same
jobs."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("monitor", "api", "webhooks", "recordings")
ENTRY_POINT = "services/cli/"  # parses the command line: sees everything


def imported(path: Path) -> set[str]:
    """The absolute module names `path` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
    return names


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service_nor_the_harness(service: str) -> None:
    strangers = {f"services.{other}" for other in SERVICES if other != service} | {"simulation"}
    for path in modules(f"services/{service}"):
        wrong = {name for name in imported(path) if any(name.startswith(s) for s in strangers)}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_shared_imports_no_service_nor_the_harness() -> None:
    for path in modules("shared"):
        wrong = {name for name in imported(path) if name.startswith(("services", "simulation"))}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_only_the_entry_point_sees_the_harness_from_the_services_tree() -> None:
    for path in modules("services"):
        if str(path.relative_to(ROOT)).startswith(ENTRY_POINT):
            continue
        assert not {n for n in imported(path) if n.startswith("simulation")}, path


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_doors(service: str) -> None:
    folder = ROOT / "services" / service
    for door in ("main.py", "http.py", "metrics.py"):
        assert (folder / door).is_file(), f"services/{service}/{door}"
    tree = ast.parse((folder / "main.py").read_text(encoding="utf-8"))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.AsyncFunctionDef)}
    assert {"running", "main"} <= set(functions), sorted(functions)
    arguments = [a.arg for a in functions["running"].args.args]
    assert arguments[:2] == ["settings", "bus"], arguments  # the same shape: settings, bus, its parts
    decorators = [ast.unparse(d) for d in functions["running"].decorator_list]
    assert decorators == ["contextlib.asynccontextmanager"]


def test_the_command_line_loads_a_service_only_to_run_it() -> None:
    """`callbridge SERVICE` parses with no service loaded, then loads the one it runs: a service's
    process holds its own code, not the other three's (tens of MB each)."""
    probe = (
        "import sys; from services.cli import main; main._parser().parse_args(['api']); "
        "print(' '.join(m for m in sys.modules if m.startswith(('services.', 'simulation.'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    services = [name for name in loaded if name.split(".")[1] in SERVICES]
    assert services == [], services
    assert "simulation.playing" not in loaded
