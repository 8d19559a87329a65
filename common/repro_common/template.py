"""`mlrepro init`: an experiment project that is reproducible from its first run.

The files come from `templates/*.tmpl` (package data), with `@@NAME@@`-style
placeholders: the Makefile and the CI workflow use `$(...)` and `${{ ... }}`
themselves, so the usual template syntaxes would collide with them.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

from repro_common.git import run_git

# template file -> path in the project
FILES = {
    "train.py.tmpl": "train.py",
    "register.py.tmpl": "register.py",
    "Makefile.tmpl": "Makefile",
    "Dockerfile.tmpl": "Dockerfile",
    "ci.yml.tmpl": ".github/workflows/train-and-register.yml",
    "gitignore.tmpl": ".gitignore",
    "dockerignore.tmpl": ".dockerignore",
    "README.md.tmpl": "README.md",
}
# What train.py imports, pinned to the versions installed where `init` runs.
REQUIREMENTS = ("mlrepro", "mlflow", "lightning", "torch", "numpy")
WANDB_REQUIREMENTS = ("wandb",)
DATA_ROWS = 256


class TemplateError(ValueError):
    """The project cannot be created where asked (bad name, folder not empty)."""


def create_project(path: Path, with_wandb: bool = False) -> list[str]:
    """Write the project into `path` (new or empty); return the files written, relative."""
    name = path.name
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise TemplateError(
            f"{name!r} is not a usable project name: start with a letter; letters, digits, - and _ only"
        )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise TemplateError(f"{path} already exists and is not empty")
    values = {
        "NAME": name,
        "WITH_WANDB": "True" if with_wandb else "False",
        "PYTHON_MINOR": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    contents: dict[str, str] = {}
    folder = resources.files("repro_common").joinpath("templates")
    for template, target in FILES.items():
        text = folder.joinpath(template).read_text()
        for key, value in values.items():
            text = text.replace(f"@@{key}@@", value)
        contents[target] = text
    contents["requirements.txt"] = requirements(with_wandb)
    contents["data/train.csv"] = dataset_csv()
    path.mkdir(parents=True, exist_ok=True)
    for target, text in contents.items():
        dest = path / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    _git_init(path)
    return sorted(contents)


def requirements(with_wandb: bool = False) -> str:
    """Pins for what train.py imports, at the versions installed here."""
    from importlib.metadata import PackageNotFoundError, version

    lines = ["# Pinned by `mlrepro init` from the environment it ran in."]
    for name in REQUIREMENTS + (WANDB_REQUIREMENTS if with_wandb else ()):
        try:
            installed = version(name)
        except PackageNotFoundError:
            lines.append(f"{name}  # not installed where the project was made: pin it")
            continue
        public = installed.split("+", 1)[0]  # `==2.13.0` also matches the local build 2.13.0+cpu
        note = ""
        if name == "torch" and "+cpu" in installed:
            note = "  # CPU build: --index-url https://download.pytorch.org/whl/cpu"
        lines.append(f"{name}=={public}{note}")
    return "\n".join(lines) + "\n"


def dataset_csv(rows: int = DATA_ROWS, seed: int = 0) -> str:
    """A small, fixed binary-classification table: the same bytes every time."""
    rng = random.Random(seed)
    lines = ["x1,x2,x3,x4,label"]
    for _ in range(rows):
        xs = [rng.gauss(0.0, 1.0) for _ in range(4)]
        label = 1 if 1.5 * xs[0] - xs[1] + 0.5 * xs[2] * xs[3] + rng.gauss(0.0, 0.3) > 0 else 0
        lines.append(",".join(f"{v:.6f}" for v in xs) + f",{label}")
    return "\n".join(lines) + "\n"


def _git_init(path: Path) -> None:
    """A repository of its own, unless the folder is already inside one (runs record commits)."""
    try:
        inside = run_git("rev-parse", "--is-inside-work-tree", cwd=path, timeout=10)
        if inside.returncode != 0:
            run_git("init", "-q", cwd=path, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        pass  # no git: the project still works, its runs just record no commit
