"""Layering rules: no prefect outside flows/, no torch when importing the libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["pipeline", "flows", "trainer", "data_contracts"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_every_package_has_modules():
    for pkg in PACKAGES:
        assert _modules(pkg), pkg


def test_prefect_only_in_flows():
    offenders = [
        str(p.relative_to(REPO))
        for pkg in PACKAGES
        if pkg != "flows"
        for p in _modules(pkg)
        if "prefect" in _imports(p)
    ]
    assert offenders == [], f"prefect imported outside flows/: {offenders}"


def test_trainer_never_imports_flows():
    offenders = [str(p.relative_to(REPO)) for p in _modules("trainer") if "flows" in _imports(p)]
    assert offenders == []


def test_data_contracts_imports_only_pydantic_and_pyarrow():
    allowed = {
        "pydantic",
        "pyarrow",
        "datasets",
        "data_contracts",
        "__future__",
    }  # datasets: lazily, in reader.py
    stdlib = set(sys.stdlib_module_names)
    for path in _modules("data_contracts"):
        extra = _imports(path) - allowed - stdlib
        assert not extra, f"{path}: imports {extra}"


def test_importing_libraries_loads_no_torch_or_prefect():
    code = (
        "import sys, importlib, pkgutil\n"
        "import data_contracts, pipeline\n"
        "for m in pkgutil.walk_packages(pipeline.__path__, 'pipeline.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "bad = sorted(k for k in ('torch', 'prefect', 'sentence_transformers', 'peft') if k in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "", f"importing pipeline/data_contracts loaded: {out.stdout.strip()}"
