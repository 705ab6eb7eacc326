"""domain/ holds business decisions only: no IO libraries, nothing read at import time."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"prefect", "httpx", "sqlmodel", "sqlalchemy", "requests", "psycopg", "starlette", "uvicorn"}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_imports_no_io_library():
    files = sorted((ROOT / "domain").rglob("*.py"))
    assert files, "domain/ has no modules"
    offenders = {str(f.relative_to(ROOT)): sorted(_imports(f) & FORBIDDEN) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_scan_catches_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from prefect import flow\nimport httpx.client\n")
    assert _imports(bad) & FORBIDDEN == {"prefect", "httpx"}


def test_importing_domain_loads_no_io_library():
    code = (
        "import sys, importlib, pkgutil, domain\n"
        "for m in pkgutil.iter_modules(domain.__path__): importlib.import_module('domain.' + m.name)\n"
        f"print(sorted(n for n in {sorted(FORBIDDEN)!r} if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
