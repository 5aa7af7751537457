"""The directions between negmine's parts, checked on the source (``ast``), so they stay true.

- relabel and training read mined files (``negmine.data.mined``) but never import ``negmine.mining``;
- ``negmine.dynamic`` (re-mining with the student) sits above training and mining, the one library module that
  imports both; only ``negmine.cli`` imports it;
- ``negmine.index`` stores and searches vectors: it imports only ``negmine.io``, ``negmine.errors`` and
  ``negmine._optional`` (building an index from data and encoders is ``negmine.retrieve``'s job);
- only ``negmine.cli`` prints;
- the losses import nothing of negmine but the sentence-transformers seam ``negmine._st_compat``, so they drop into
  any sentence-transformers script.

Every rule is shown to fail on a small package that breaks it (``tmp_path``), so this test can fail.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. negmine.relabel.arhn
    path: Path
    tree: ast.Module


def load_modules(root: Path, package: str = "negmine") -> list[Module]:
    modules = []
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append(Module(".".join(parts), path, ast.parse(path.read_text(encoding="utf-8"), str(path))))
    return modules


def imported_modules(module: Module) -> list[tuple[str, int]]:
    """Every module an ``import`` names (at any depth: lazy imports inside functions count), relative ones resolved."""
    is_package = module.path.name == "__init__.py"
    out = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
            out += [(f"{name}.{alias.name}", node.lineno) for alias in node.names]  # `from pkg import submodule`
    return out


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(root: Path, package: str = "negmine") -> list[str]:
    """The broken rules of the package under ``root``, one line each (``file:line: what``)."""
    found = []
    known = {m.name for m in load_modules(root, package)}

    def is_module(name: str) -> bool:  # `from negmine.x import name` names a module only if one exists
        return name in known or any(k.startswith(name + ".") for k in known)

    for module in load_modules(root, package):
        where = f"{module.path.relative_to(root)}"
        reported = set()  # one finding per import statement
        for name, line in imported_modules(module):
            if line in reported or not _within(name, package) or not is_module(name):
                continue
            before = len(found)
            if (_within(module.name, f"{package}.relabel") or _within(module.name, f"{package}.training")) and \
                    _within(name, f"{package}.mining"):
                found.append(f"{where}:{line}: {module.name} imports {name} (relabel and training read mined "
                             f"files through {package}.data.mined, never {package}.mining)")
            if _within(name, f"{package}.dynamic") and not any(
                    _within(module.name, allowed) for allowed in (f"{package}.dynamic", f"{package}.cli")):
                found.append(f"{where}:{line}: {module.name} imports {name} ({package}.dynamic sits above training "
                             f"and mining; only {package}.cli imports it)")
            if _within(module.name, f"{package}.index") and not any(
                    _within(name, allowed) for allowed in (f"{package}.index", f"{package}.io", f"{package}.errors",
                                                           f"{package}._optional")) and name != package:
                found.append(f"{where}:{line}: {module.name} imports {name} ({package}.index imports only "
                             f"{package}.io, {package}.errors and {package}._optional)")
            if _within(module.name, f"{package}.losses") and not any(
                    _within(name, allowed) for allowed in (f"{package}.losses", f"{package}._st_compat")) \
                    and name != package:
                found.append(f"{where}:{line}: {module.name} imports {name} (the losses import nothing of "
                             f"{package} but {package}._st_compat)")
            if len(found) > before:
                reported.add(line)
        if not _within(module.name, f"{package}.cli"):
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                    found.append(f"{where}:{node.lineno}: print() outside {package}.cli (only the command line "
                                 f"prints; log, or return the text)")
    return found


def test_negmine_keeps_its_directions():
    assert violations(ROOT) == []


def _package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in {"pkg/__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.parents:
            if parent == root:
                break
            (parent / "__init__.py").touch()
        path.write_text(text)
    return root


CLEAN = {
    "pkg/io.py": "import json\n",
    "pkg/errors.py": "",
    "pkg/_optional.py": "",
    "pkg/_st_compat.py": "",
    "pkg/data/mined.py": "from pkg.errors import DataError\n",
    "pkg/encoders/base.py": "",
    "pkg/retrieve.py": "from pkg.data import mined\nfrom pkg.index import store\n",
    "pkg/mining/api.py": "from pkg.data.mined import MinedRecord\nfrom pkg.retrieve import Retriever\n",
    "pkg/relabel/api.py": "from pkg.data.mined import read_mined\nfrom . import rules\n",
    "pkg/relabel/rules.py": "",
    "pkg/training.py": "from pkg.data.mined import build_rows\n",
    "pkg/dynamic.py": "from pkg.training import train\nfrom pkg.mining.api import run_mining\n",
    "pkg/cli/train.py": "from pkg.dynamic import train_dynamic\n",
    "pkg/index/store.py": "from pkg.io import write_json\nfrom pkg import errors\nfrom ._x import y\n",
    "pkg/index/_x.py": "y = 1\n",
    "pkg/losses/infonce.py": "import torch\nfrom pkg._st_compat import embed_columns\nfrom ._common import Base\n",
    "pkg/losses/_common.py": "class Base:\n    pass\n",
    "pkg/cli/main.py": "print('hello')\n",
}


def test_a_clean_package_passes(tmp_path):
    assert violations(_package(tmp_path, CLEAN), "pkg") == []


@pytest.mark.parametrize("rel,text,expected", [
    ("pkg/relabel/api.py", "def f():\n    from pkg.mining.api import x\n", "relabel and training read mined files"),
    ("pkg/relabel/api.py", "from ..mining import api\n", "relabel and training read mined files"),
    ("pkg/training.py", "import pkg.mining.api\n", "relabel and training read mined files"),
    ("pkg/training.py", "def f():\n    from pkg.dynamic import train_dynamic\n", "pkg.dynamic sits above"),
    ("pkg/mining/api.py", "from pkg import dynamic\n", "pkg.dynamic sits above"),
    ("pkg/index/store.py", "def build():\n    from pkg.retrieve import Retriever\n", "pkg.index imports only"),
    ("pkg/index/store.py", "from pkg.data.mined import x\n", "pkg.index imports only"),
    ("pkg/index/store.py", "from pkg import encoders\n", "pkg.index imports only"),
    ("pkg/io.py", "def publish(text):\n    print(text)\n", "print() outside pkg.cli"),
    ("pkg/losses/infonce.py", "from pkg.errors import DataError\n", "the losses import nothing of pkg"),
    ("pkg/losses/_common.py", "from ..io import write_json\n", "the losses import nothing of pkg"),
])
def test_each_rule_fails_on_a_package_that_breaks_it(tmp_path, rel, text, expected):
    root = _package(tmp_path, {**CLEAN, rel: text})
    found = violations(root, "pkg")
    assert len(found) == 1 and expected in found[0] and found[0].startswith(rel + ":"), found
