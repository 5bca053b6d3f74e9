"""Execute the notebooks in ``notebooks/`` with nbclient, in place (outputs committed) or into another folder.

    .venv/bin/python scripts/run_notebooks.py                      # all notebooks, default (full) sizes, in place
    .venv/bin/python scripts/run_notebooks.py notebooks/02_hardware_aware_training.ipynb
    .venv/bin/python scripts/run_notebooks.py --set N_CHIPS=2 --out runs/notebooks   # smaller, copies elsewhere

Each notebook has one code cell tagged ``parameters`` (papermill-style). ``--set NAME=VALUE`` (a Python literal)
appends ``NAME = VALUE`` to that cell before running, so a reduced run never edits the committed sources. The
kernel runs with the repository root as its working directory; notebooks write their run folders under
``runs/notebooks/`` (git-ignored) or a temporary directory, never into tracked files.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The code cell tagged ``parameters``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    raise ValueError("notebook has no code cell tagged 'parameters'")


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict[str, Any]) -> None:
    """Append ``NAME = repr(value)`` lines for ``parameters`` to the parameters cell (unknown names are refused)."""
    if not parameters:
        return
    cell = parameters_cell(nb)
    known = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets
             if isinstance(t, ast.Name)}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise KeyError(f"unknown notebook parameter(s) {unknown}; the parameters cell defines {sorted(known)}")
    lines = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell.source = cell.source.rstrip("\n") + "\n\n# injected parameters\n" + lines + "\n"


def execute_notebook(
    path: str | Path,
    parameters: dict[str, Any] | None = None,
    out_path: str | Path | None = None,
    timeout: int = 7200,
    cwd: str | Path = ROOT,
) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` and return it; write it to ``out_path`` if given.

    A failing cell raises ``nbclient.exceptions.CellExecutionError`` (with the traceback).
    """
    nb = nbformat.read(str(path), as_version=4)
    inject_parameters(nb, parameters or {})
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    client.execute()
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(out_path))
    return nb


def _parse_set(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name.strip()] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: all in notebooks/)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    parser.add_argument("--out", type=Path, default=None, help="write executed copies here instead of in place")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per cell")
    args = parser.parse_args(argv)
    parameters = _parse_set(args.set)
    for path in args.notebooks or NOTEBOOKS:
        target = path if args.out is None else args.out / path.name
        start = time.perf_counter()
        print(f"{path} -> {target}", flush=True)
        execute_notebook(path, parameters, out_path=target, timeout=args.timeout)
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
