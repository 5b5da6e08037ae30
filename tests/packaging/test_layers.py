"""The layer contracts of docs/architecture.md hold, and the documented layers are the checked ones."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "kernels", "scenarios", "liquidity", "portfolios", "monitoring", "reports", "grid", "cluster")


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_import_linter_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]'")
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert f"Contracts: {len(_contracts())} kept, 0 broken" in out.stdout


def test_the_documented_layers_are_the_checked_layers():
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    doc = (ROOT / "docs" / "architecture.md").read_text()
    picture = doc[doc.index("```") + 3: doc.index("```", doc.index("```") + 3)]
    documented = [" | ".join(re.findall(r"stressgrid\.\w+", line)) for line in picture.splitlines()
                  if re.match(r"\s*stressgrid\.\w+", line)]
    assert documented == layers
    # every package is in exactly one layer
    named = [m for layer in layers for m in layer.split(" | ")]
    assert sorted(named) == sorted(["stressgrid.cli"] + [f"stressgrid.{p}" for p in PACKAGES])


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []


def private_imports_across_packages() -> list[str]:
    """``file:line module`` for every import of another package's private module (``stressgrid.X._y``,
    or ``from stressgrid.X import _y``)."""
    found = []
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            for line, module, names in _imports(f):
                parts = module.split(".")
                if parts[0] != "stressgrid" or len(parts) < 2 or parts[1] == pkg:
                    continue
                private = any(p.startswith("_") for p in parts[2:]) or any(n.startswith("_") for n in names)
                if private:
                    found.append(f"{f.relative_to(ROOT)}:{line} {module} {names}")
    for line, module, names in _imports(ROOT / "cli.py"):
        if module.startswith("stressgrid.") and (any(p.startswith("_") for p in module.split(".")[2:])
                                                 or any(n.startswith("_") for n in names)):
            found.append(f"cli.py:{line} {module} {names}")
    return found


def test_no_package_imports_another_packages_private_module():
    assert private_imports_across_packages() == []


def test_the_private_import_check_finds_one(tmp_path, monkeypatch):
    """The check above can fail: a module planted with a private import across packages is reported."""
    fake = tmp_path / "root"
    for pkg in PACKAGES:
        (fake / pkg).mkdir(parents=True)
    (fake / "cli.py").write_text("")
    (fake / "monitoring" / "m.py").write_text("from stressgrid.scenarios._montecarlo import fit_dcc\n")
    (fake / "grid" / "g.py").write_text("from stressgrid.scenarios import RollingSpec\nfrom stressgrid.grid._run import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    assert private_imports_across_packages() == ["monitoring/m.py:1 stressgrid.scenarios._montecarlo ['fit_dcc']"]
