"""The house rules of docs/architecture.md, checked on the source: imports only point down the layers,
Hydra only at the config edge, the library never imports its applications, no file over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

LIBRARY = REPO_ROOT / "qvltrain"

# package (or top-level module) of qvltrain -> what it may import from qvltrain besides itself
ALLOWED = {
    "vision": set(),
    "text": set(),
    "batch": set(),
    "launch_args": set(),
    "data": {"vision", "text", "batch"},
    "shards": {"data", "vision", "text"},
    "model": {"vision", "text", "batch"},
    "train": {"model", "data", "vision", "text", "batch"},
    "config": {"train"},  # the Hydra edge: composes the typed configs the layers own
}
HYDRA_MODULES = ("hydra", "omegaconf")
MAX_LINES = 400


def unit_of(path: Path) -> str:
    relative = path.relative_to(LIBRARY)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def imports(path: Path) -> list[tuple[str, int]]:
    """Every imported module name of a file (also imports inside functions), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def library_files() -> list[Path]:
    files = sorted(LIBRARY.rglob("*.py"))
    assert len(files) > 50, "the library was not found"
    return files


def test_imports_point_down_the_layers() -> None:
    assert set(ALLOWED) == {unit_of(path) for path in library_files() if path.name != "__init__.py"} | {
        "launch_args"
    }
    violations = []
    for path in library_files():
        unit = unit_of(path)
        for module, line in imports(path):
            parts = module.split(".")
            if parts[0] == "apps" or parts[0] == "data_recipes" or parts[0] == "tests":
                violations.append(f"{path.relative_to(REPO_ROOT)}:{line} imports {module} (an application)")
            elif (
                parts[0] == "qvltrain"
                and len(parts) > 1
                and parts[1] != unit
                and parts[1] not in ALLOWED[unit]
            ):
                violations.append(
                    f"{path.relative_to(REPO_ROOT)}:{line} imports {module} ({unit} -> {parts[1]})"
                )
    assert not violations, "\n".join(violations)


def test_hydra_only_at_the_config_edge() -> None:
    users = {
        str(path.relative_to(REPO_ROOT))
        for path in library_files()
        for module, _ in imports(path)
        if module.split(".")[0] in HYDRA_MODULES
    }
    assert users == {"qvltrain/config.py"}


def family_packages() -> set[str]:
    """The model family folders, qvltrain/model/<name>/ (everything there but common/)."""
    model = LIBRARY / "model"
    return {path.parent.name for path in model.glob("*/__init__.py")} - {"common"}


def test_model_families_are_plug_ins() -> None:
    """Only a family's own folder imports it (the rest asks the registry, qvltrain/model/family.py);
    common/, family.py and config.py import no family; no family imports another."""
    families = family_packages()
    assert "qwen2_vl" in families
    files = library_files() + [
        p for folder in ("apps", "launch") for p in sorted((REPO_ROOT / folder).rglob("*.py"))
    ]
    violations = []
    for path in files:
        relative = path.relative_to(REPO_ROOT).parts
        own = relative[2] if relative[:2] == ("qvltrain", "model") and len(relative) > 3 else None
        for module, line in imports(path):
            parts = module.split(".")
            if (
                parts[:2] == ["qvltrain", "model"]
                and len(parts) > 2
                and parts[2] in families
                and parts[2] != own
            ):
                violations.append(f"{'/'.join(relative)}:{line} imports {module}")
    assert not violations, "\n".join(violations)


def test_no_file_over_400_lines() -> None:
    files = library_files() + sorted((REPO_ROOT / "apps").rglob("*.py"))
    long = {
        str(p.relative_to(REPO_ROOT)): n for p in files if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_no_module_shadows_the_standard_library() -> None:
    import sys

    shadowing = [
        str(path.relative_to(REPO_ROOT))
        for path in library_files() + sorted((REPO_ROOT / "apps").rglob("*.py"))
        if path.stem in sys.stdlib_module_names
    ]
    assert not shadowing, shadowing


def test_every_third_party_import_is_a_declared_dependency() -> None:
    import re
    import sys

    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra
    ]
    declared = {re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower().replace("-", "_") for spec in specs}
    import_names = {"PIL": "pillow", "yaml": "pyyaml", "hydra": "hydra_core", "flash_attn": "flash_attn"}
    files = library_files() + [
        p
        for folder in ("apps", "launch", "data_recipes", "tests")
        for p in sorted((REPO_ROOT / folder).rglob("*.py"))
    ]
    launch_scripts = {p.stem for p in (REPO_ROOT / "launch").glob("*.py")}  # tests import them by path
    undeclared = set()
    for path in files:
        for module, _ in imports(path):
            top = module.split(".")[0]
            local = top in ("qvltrain", "apps", "data_recipes", "tests", *launch_scripts)
            if top in sys.stdlib_module_names or local:
                continue
            if import_names.get(top, top).lower() not in declared:
                undeclared.add(f"{top} ({path.relative_to(REPO_ROOT)})")
    assert not undeclared, sorted(undeclared)
