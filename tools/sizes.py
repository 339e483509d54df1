"""How big the rooms are: lines per module of the product (services/, shared/ and the simulation
harness), their median, p90 and largest, and every function longer than the limit.

    python tools/sizes.py [--max-function 60]      (make sizes)

Exit 1 when a module is over 400 lines, a function over the limit, or the median or p90 over
theirs (70, 300), so that CI (`make lint`) holds the shape."""

import argparse
import ast
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("services", "shared", "simulation")
MODULE_LIMIT = 400
MEDIAN_LIMIT = 70  # the model codebases' shape (issue 13): most rooms small, a few large ones
P90_LIMIT = 300


def modules() -> list[Path]:
    return sorted(
        p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if (ROOT / package).is_dir()
    )


def long_functions(path: Path, limit: int) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                found.append((f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", length))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-function", type=int, default=60)
    args = parser.parse_args()
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in modules()}
    lengths = sorted(sizes.values())
    p90 = statistics.quantiles(lengths, n=10, method="inclusive")[-1]
    print(
        f"{len(lengths)} modules, {sum(lengths):,} lines: median {statistics.median(lengths):g}, "
        f"p90 {p90:g}, largest {lengths[-1]}"
    )
    for path, size in sorted(sizes.items(), key=lambda item: -item[1])[:10]:
        print(f"  {size:5d}  {path.relative_to(ROOT)}")
    too_big = [path for path, size in sizes.items() if size > MODULE_LIMIT]
    functions = [found for path in sizes for found in long_functions(path, args.max_function)]
    print(f"functions over {args.max_function} lines: {len(functions)}")
    for name, length in sorted(functions, key=lambda item: -item[1]):
        print(f"  {length:5d}  {name}")
    spread = statistics.median(lengths) > MEDIAN_LIMIT or p90 > P90_LIMIT
    if spread:
        print(f"the median must stay at most {MEDIAN_LIMIT} lines and p90 at most {P90_LIMIT}")
    return 1 if too_big or functions or spread else 0


if __name__ == "__main__":
    sys.exit(main())
