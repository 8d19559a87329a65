"""An interpreter where mlrepro comes from a built wheel, as a user installs it.

The suite's own venv holds mlrepro as an editable install, which the production
gate rightly refuses (not reinstallable), and whose entry points are those of the
checkout it points at. This venv sees every other package of the suite's venv
through a folder of links, and gets mlrepro from a wheel built from a copy of
the sources (the checkout is left alone).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("common", "mlflow_repro_plugin", "wandb_repro_plugin")
PROJECT_FILES = ("setup.cfg", "pyproject.toml", "README.md")


def build_installed_python(base: Path) -> str:
    """Build the venv under `base`; return its interpreter."""
    src = base / "src"
    for name in SOURCES:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "wheels"), str(src)],
        check=True,
        capture_output=True,
    )
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    overlay = base / "parent-packages"
    overlay.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        lowered = entry.name.lower()
        if lowered.startswith(("mlrepro", "__editable__")) or entry.suffix == ".pth":
            continue
        (overlay / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "_suite_packages.pth").write_text(f"{overlay}\n")
    subprocess.run(
        [
            *pip,
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--find-links",
            str(base / "wheels"),
            "mlrepro",
        ],
        check=True,
        capture_output=True,
    )
    return str(python)
