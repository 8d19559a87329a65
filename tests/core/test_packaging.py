"""The package as users get it: a wheel with exactly our three packages, and real installs recorded honestly."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from support.git import git, make_repo
from support.procs import clean_env

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def _source_copy(dest: Path) -> Path:
    """What a clean clone holds (tracked and not-ignored files), so a build never touches the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(src.read_bytes())
    return dest


@pytest.mark.slow
def test_the_wheel_holds_exactly_the_three_packages_and_the_schema(tmp_path: Path) -> None:
    src = _source_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        check=True, capture_output=True, text=True, env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )  # fmt: skip
    (wheel,) = wheels.glob("mlrepro-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"repro_common", "mlflow_repro_plugin", "wandb_repro_plugin"}
    assert "repro_common/schema/manifest.schema.json" in names
    assert "repro_common/cli/__init__.py" in names and "repro_common/environment.py" in names
    assert "repro_common/fingerprints/files.py" in names and "repro_common/inputs.py" in names
    assert "repro_common/reproduce/__init__.py" in names  # the reproduce package ships
    assert not [n for n in names if n.startswith(("tests/", "common/", "benchmarks/"))]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mlrepro = repro_common.cli:main" in text
    assert "mlflow = mlflow_repro_plugin.source:SOURCE" in text  # run sources, not bare loaders
    assert "mlflow_repro_plugin.provider:ReproRunContextProvider" in text
    assert "mlrepro-gate = mlflow_repro_plugin.registry_gate:create_app" in text  # mlflow.app


def _throwaway_project(path: Path, name: str) -> Path:
    path.mkdir(parents=True)
    (path / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.1.0"\n\n[tool.setuptools]\npy-modules = ["{name}"]\n'
    )
    (path / f"{name}.py").write_text("VALUE = 1\n")
    return path


def _handmade_wheel(folder: Path, name: str, version: str) -> tuple[Path, str]:
    """A minimal, valid wheel (what an index would serve), and its sha256."""
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": b"VALUE = 2\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for rel, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(wheel, "w") as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.mark.slow
def test_real_editable_vcs_and_archive_installs_are_recorded_with_their_source(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    vpython = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(vpython), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # This interpreter's packages (pip, setuptools, mlrepro itself) stay visible in the new venv.
    (Path(purelib) / "_outer_env.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n"
    )

    editable = _throwaway_project(tmp_path / "editable_src", "throwaway_editable")
    vcs_repo = _throwaway_project(tmp_path / "vcs_src", "throwaway_vcs")
    make_repo(vcs_repo)  # commits the project files as they are
    commit = git(vcs_repo, "rev-parse", "HEAD")
    wheel, sha256 = _handmade_wheel(tmp_path, "throwaway_archive", "1.0")

    env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    install = subprocess.run(
        [
            str(vpython), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
            "-e", str(editable),
            f"throwaway_vcs @ git+{vcs_repo.as_uri()}@{commit}",
            f"throwaway_archive @ {wheel.as_uri()}#sha256={sha256}",
        ],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr

    probe = subprocess.run(
        [
            str(vpython), "-c",
            "import json, repro_common\n"
            "from repro_common.environment import requirements_txt\n"
            "m = repro_common.capture()\n"
            "print(json.dumps({'packages': m.environment['packages'], 'req': requirements_txt(m.environment['packages'])}))",
        ],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    doc = json.loads(probe.stdout)
    packages = {p["name"]: p for p in doc["packages"]}

    edit = packages["throwaway-editable"]
    assert (edit["source"], edit["editable"], edit["reinstallable"]) == ("editable", True, False)
    assert edit["url"] == editable.as_uri() and edit["version"] == "0.1.0"

    vcs = packages["throwaway-vcs"]
    assert (vcs["source"], vcs["commit"], vcs["url"]) == ("vcs", commit, vcs_repo.as_uri())
    assert vcs["reinstallable"] is False  # a repository on this machine only

    archive = packages["throwaway-archive"]
    assert (archive["source"], archive["hash"]) == ("archive", f"sha256={sha256}")

    req = doc["req"]
    assert (
        f"# throwaway-editable @ {editable.as_uri()}  -- not reinstallable: editable install" in req
    )
    assert f"throwaway-vcs @ git+{vcs_repo.as_uri()}@{commit}" in req
    assert "\nclick==" in req  # index installs from the outer environment stay pinned
