"""Environment capture: every distribution with its source, the system, and nothing secret."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from repro_common import environment
from repro_common.environment import (
    canonical_name,
    classify_direct_url,
    collect_environment,
    collect_packages,
    parse_nvidia_smi,
    requirement_line,
    requirements_txt,
)
from repro_common.manifest import environment_digest
from support.procs import clean_env, run_python


def _fake_dist(site: Path, name: str, version: str, direct_url: dict | str | None = None) -> Path:
    """A distribution as an installer leaves it: `<name>-<version>.dist-info/METADATA`."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nbody\n"
    )
    if direct_url is not None:
        text = direct_url if isinstance(direct_url, str) else json.dumps(direct_url)
        (info / "direct_url.json").write_text(text)
    return info


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site-packages folder first on sys.path, as a venv's would be."""
    site = tmp_path / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_packages_match_what_importlib_metadata_reports_for_this_interpreter() -> None:
    ours = {p["name"]: p["version"] for p in collect_packages()}
    theirs: dict[str, str] = {}
    for dist in distributions():
        theirs.setdefault(canonical_name(dist.metadata["Name"]), dist.version)
    assert ours == theirs
    assert ours["click"] and ours["blake3"]


def test_this_checkout_installed_editable_is_flagged_not_reinstallable() -> None:
    mlrepro = next(p for p in collect_packages() if p["name"] == "mlrepro")
    # The suite runs from `pip install -e .` (README) or from a wheel; say which honestly.
    if mlrepro["source"] == "editable":
        assert mlrepro["reinstallable"] is False and "editable" in mlrepro["reason"]
        assert mlrepro["url"].startswith("file://")
    else:
        assert mlrepro["source"] in ("index", "archive", "local")


def test_a_package_version_change_changes_the_environment_digest(site_dir: Path) -> None:
    _fake_dist(site_dir, "throwaway_pkg", "1.0")
    first = collect_environment([])
    again = collect_environment([])
    assert environment_digest(first) == environment_digest(again)

    (site_dir / "throwaway_pkg-1.0.dist-info").rename(site_dir / "throwaway_pkg-1.1.dist-info")
    changed = collect_environment([])
    assert {
        "name": "throwaway-pkg",
        "version": "1.1",
        "source": "index",
        "reinstallable": True,
    } in changed["packages"]
    assert environment_digest(changed) != environment_digest(first)


def test_the_first_distribution_on_sys_path_wins_like_import(
    site_dir: Path, tmp_path: Path
) -> None:
    shadowed = tmp_path / "later" / "site-packages"
    _fake_dist(site_dir, "twice", "2.0")
    _fake_dist(shadowed, "twice", "1.0")
    sys.path.append(str(shadowed))
    try:
        versions = [p["version"] for p in collect_packages() if p["name"] == "twice"]
    finally:
        sys.path.remove(str(shadowed))
    assert versions == ["2.0"]


def test_pep610_sources_are_recorded_with_what_reinstalls_them(site_dir: Path) -> None:
    commit = "a" * 40
    _fake_dist(
        site_dir,
        "from_git",
        "0.3",
        {
            "url": "https://tok:CANARY@github.com/org/from-git.git",
            "vcs_info": {"vcs": "git", "commit_id": commit, "requested_revision": "v0.3"},
        },
    )
    _fake_dist(
        site_dir,
        "from_archive",
        "1.2",
        {
            "url": "https://files.example.org/from_archive-1.2.tar.gz",
            "archive_info": {"hashes": {"sha256": "b" * 64}},
        },
    )
    _fake_dist(site_dir, "from_dir", "0.1", {"url": "file:///src/from_dir", "dir_info": {}})
    _fake_dist(
        site_dir,
        "from_edit",
        "0.1",
        {"url": "file:///src/from_edit", "dir_info": {"editable": True}},
    )
    packages = {p["name"]: p for p in collect_packages()}

    vcs = packages["from-git"]
    assert (vcs["source"], vcs["commit"], vcs["requested_revision"], vcs["reinstallable"]) == (
        "vcs",
        commit,
        "v0.3",
        True,
    )
    assert vcs["url"] == "https://github.com/org/from-git.git"  # credentials stripped
    assert requirement_line(vcs) == f"from-git @ git+https://github.com/org/from-git.git@{commit}"

    archive = packages["from-archive"]
    assert archive["source"] == "archive" and archive["hash"] == "sha256=" + "b" * 64
    assert (
        requirement_line(archive)
        == "from-archive @ https://files.example.org/from_archive-1.2.tar.gz#sha256=" + "b" * 64
    )

    assert (packages["from-dir"]["source"], packages["from-dir"]["reinstallable"]) == (
        "local",
        False,
    )
    assert (packages["from-edit"]["source"], packages["from-edit"]["editable"]) == (
        "editable",
        True,
    )
    assert packages["from-edit"]["reinstallable"] is False


def test_local_vcs_and_archive_files_cannot_be_reinstalled_elsewhere() -> None:
    local_git = classify_direct_url(
        {"url": "file:///home/me/repo", "vcs_info": {"vcs": "git", "commit_id": "c" * 40}}
    )
    local_whl = classify_direct_url(
        {"url": "file:///tmp/x-1.0-py3-none-any.whl", "archive_info": {}}
    )
    no_commit = classify_direct_url({"url": "https://h/x.git", "vcs_info": {"vcs": "git"}})
    for record in (local_git, local_whl, no_commit):
        assert record["reinstallable"] is False and record["reason"]


def test_requirements_txt_pins_every_reinstallable_package_and_explains_the_rest() -> None:
    packages = collect_packages() + [
        {
            "name": "local-thing",
            "version": "0.1",
            "source": "editable",
            "url": "file:///src/thing",
            "reinstallable": False,
            "reason": "editable install of a local directory",
        },
    ]
    text = requirements_txt(packages)
    pinned = [line for line in text.splitlines() if line and not line.startswith("#")]
    for line in pinned:
        req = Requirement(line)  # pip's own grammar
        assert req.url or [s.operator for s in req.specifier] == ["=="], line
    assert len(pinned) == sum(1 for p in packages if p.get("reinstallable"))
    assert (
        "# local-thing @ file:///src/thing  -- not reinstallable: editable install of a local directory"
        in text
    )
    assert "click==" in text


def test_a_broken_distribution_is_reported_and_the_others_are_kept(site_dir: Path) -> None:
    (site_dir / "noversion.dist-info").mkdir()  # no version in the name, no METADATA
    _fake_dist(site_dir, "garbled", "1.0", "{not json")
    _fake_dist(site_dir, "fine", "2.0")
    errors: list[dict] = []
    packages = {p["name"]: p for p in collect_environment(errors)["packages"]}
    assert packages["fine"]["version"] == "2.0"
    assert (
        packages["garbled"]["source"] == "unknown" and packages["garbled"]["reinstallable"] is False
    )
    assert "click" in packages
    assert any(
        e["collector"] == "environment.packages" and "noversion" in e["error"] for e in errors
    )


def test_conda_packages_are_read_from_conda_meta_without_running_conda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = tmp_path / "conda" / "conda-meta"
    meta.mkdir(parents=True)
    for name in (
        "numpy-1.26.4-py311h64a7726_0.json",
        "libgcc-ng-13.2.0-h77fa898_7.json",
        "history",
    ):
        (meta / name).write_text("{}")
    monkeypatch.setenv("CONDA_PREFIX", str(tmp_path / "conda"))
    conda = collect_environment([])["conda"]
    assert conda == [
        {"name": "libgcc-ng", "version": "13.2.0", "build": "h77fa898_7"},
        {"name": "numpy", "version": "1.26.4", "build": "py311h64a7726_0"},
    ]
    monkeypatch.delenv("CONDA_PREFIX")
    assert collect_environment([])["conda"] is None


def _host_without_container_marks(
    monkeypatch: pytest.MonkeyPatch, files: tuple[str, ...] = (), cgroup: str = "0::/\n"
) -> None:
    """This host as one with no container evidence, whatever it really is: of the marker
    files only `files` exist, /proc/1/cgroup reads `cgroup`, no container variables."""
    real_exists, real_read = os.path.exists, environment._read_text
    markers = ("/.dockerenv", "/run/.containerenv")

    def exists(path: object) -> bool:
        if path in markers:
            return path in files
        return real_exists(path)  # type: ignore[arg-type]

    def read_text(path: str, limit: int = 1 << 20) -> str:
        return cgroup if path == "/proc/1/cgroup" else real_read(path, limit)

    monkeypatch.setattr(os.path, "exists", exists)
    monkeypatch.setattr(environment, "_read_text", read_text)
    for name in ("container", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)


def test_the_container_image_comes_from_mlrepro_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLREPRO_IMAGE names the image; it is no evidence that this process runs in one."""
    _host_without_container_marks(monkeypatch)
    monkeypatch.setenv("MLREPRO_IMAGE", "ghcr.io/org/train:1.4@sha256:" + "d" * 64)
    container = collect_environment([])["container"]
    assert container == {
        "in_container": False,
        "image": "ghcr.io/org/train:1.4@sha256:" + "d" * 64,
        "image_digest": "sha256:" + "d" * 64,
        "source": "MLREPRO_IMAGE",
    }


@pytest.mark.parametrize(
    ("files", "cgroup", "variable"),
    [
        (("/.dockerenv",), "0::/\n", None),
        ((), "0::/\n", ("container", "podman")),
        ((), "0::/\n", ("KUBERNETES_SERVICE_HOST", "10.0.0.1")),
        ((), "12:pids:/docker/0123abcd\n", None),
    ],
    ids=["dockerenv", "container-variable", "kubernetes", "cgroup"],
)
def test_each_container_mark_is_evidence(
    monkeypatch: pytest.MonkeyPatch,
    files: tuple[str, ...],
    cgroup: str,
    variable: tuple[str, str] | None,
) -> None:
    _host_without_container_marks(monkeypatch, files, cgroup)
    if variable is not None:
        monkeypatch.setenv(*variable)
    assert environment.collect_container()["in_container"] is True


def test_only_allow_listed_variables_are_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    monkeypatch.setenv("MY_API_TOKEN", "CANARY-env-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "CANARY-aws")
    env = collect_environment([])
    assert env["variables"]["OMP_NUM_THREADS"] == "3"
    assert env["variables"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert set(env["variables"]) <= set(environment.ENV_ALLOWLIST)
    assert "CANARY" not in json.dumps(env)


def test_system_facts_are_recorded() -> None:
    env = collect_environment([])
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["python"]["executable"] == sys.executable
    assert env["os"]["system"] and env["os"]["machine"]
    assert env["hardware"]["cpu_count"] == os.cpu_count()
    assert env["hardware"]["memory_bytes"] > 0
    if sys.platform.startswith("linux"):
        assert env["os"]["libc"] and env["hardware"]["cpu"]


def test_unreadable_proc_leaves_the_cpu_model_empty_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def denied(path: str, limit: int = 0) -> str:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(environment, "_read_text", denied)
    errors: list[dict] = []
    env = collect_environment(errors)
    assert env["hardware"]["cpu"] is None
    assert env["packages"] and env["python"]
    if sys.platform.startswith("linux"):
        assert any(
            e["collector"] == "environment.hardware.cpu" and "Permission" in e["error"]
            for e in errors
        )


def test_a_failing_part_costs_only_that_part(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("metadata store exploded")

    monkeypatch.setattr(environment, "collect_packages", lambda errors=None: broken())
    monkeypatch.setattr(environment, "collect_container", broken)
    errors: list[dict] = []
    env = collect_environment(errors)
    assert env["packages"] == [] and env["container"] is None
    assert env["python"]["version"] and env["hardware"]["cpu_count"]
    assert {e["collector"] for e in errors} == {"environment.packages", "environment.container"}
    assert environment_digest(env).startswith("blake3:")


def test_torch_is_never_imported_just_to_look() -> None:
    out = run_python(
        """
        import sys
        from repro_common.environment import collect_environment
        env = collect_environment([])
        print("torch" in sys.modules, env["hardware"]["cuda"])
        """
    )
    assert out.stdout.split() == ["False", "None"]


def test_an_imported_torch_gives_cuda_and_cudnn_without_initialising_cuda() -> None:
    """The record's CUDA and cuDNN versions are torch's own, read without starting CUDA.

    On a CPU build both are None; on a CUDA build they are strings: the checks below hold
    on either, and fail if capture starts CUDA or reads the wrong attribute."""
    out = run_python(
        """
        import json, torch
        import torch.backends.cudnn
        from repro_common.environment import collect_environment
        attempts = []  # torch starts CUDA through _lazy_init (even where it then fails: CPU builds)
        real_lazy_init = torch.cuda._lazy_init
        def counting_lazy_init():
            attempts.append(1)
            return real_lazy_init()
        torch.cuda._lazy_init = counting_lazy_init
        hw = collect_environment([])["hardware"]
        started = torch.cuda.is_initialized() or bool(attempts)
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        print(json.dumps({"recorded": [hw["cuda"], hw["cudnn"]], "started": started,
                          "torch": [torch.version.cuda, cudnn and str(cudnn)],
                          "build": torch.__version__}))
        """
    )
    found = json.loads(out.stdout)
    assert found["started"] is False, "capture must never initialise CUDA"
    assert found["recorded"] == found["torch"], found
    if found["build"].endswith("+cpu"):  # this suite's CPU wheel: nothing to claim
        assert found["recorded"] == [None, None]
    else:
        assert all(isinstance(value, str) and value for value in found["recorded"]), found


def _fake_nvidia_smi(folder: Path, script: str) -> None:
    exe = folder / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def test_gpus_come_from_nvidia_smi_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_nvidia_smi(
        tmp_path,
        "echo '0, GPU-aaaa, NVIDIA H100 80GB HBM3, 550.54.15'\necho '1, GPU-bbbb, NVIDIA H100 80GB HBM3, 550.54.15'\n",
    )
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    hw = collect_environment([])["hardware"]
    assert hw["gpus"] == [{"name": "NVIDIA H100 80GB HBM3"}]
    assert hw["driver"] == "550.54.15"


def test_a_hanging_nvidia_smi_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, "sleep 30\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(environment, "NVIDIA_SMI_TIMEOUT_S", 0.5)
    errors: list[dict] = []
    started = time.monotonic()
    hw = collect_environment(errors)["hardware"]
    assert time.monotonic() - started < 10
    assert hw["gpus"] == []
    assert any(
        e["collector"] == "environment.hardware.gpus" and "nvidia-smi" in e["error"] for e in errors
    )


def test_cuda_visible_devices_selects_and_orders_gpus() -> None:
    out = "0, GPU-a1, A100, 535.1\n1, GPU-b2, H100, 535.1\n2, GPU-c3, L4, 535.1\n"
    assert parse_nvidia_smi(out, None)[0] == [{"name": "A100"}, {"name": "H100"}, {"name": "L4"}]
    assert parse_nvidia_smi(out, "2,0")[0] == [{"name": "L4"}, {"name": "A100"}]
    assert parse_nvidia_smi(out, "GPU-b2")[0] == [{"name": "H100"}]
    assert parse_nvidia_smi(out, "")[0] == []
    assert parse_nvidia_smi(out, "1,7,2")[0] == [{"name": "H100"}]  # CUDA stops at an invalid id


def test_environment_capture_in_a_fresh_process_records_no_secret_variable() -> None:
    env = clean_env(MY_API_TOKEN="CANARY-fresh", OMP_NUM_THREADS="2")
    out = run_python(
        "import json; from repro_common.environment import collect_environment; print(json.dumps(collect_environment([])))",
        env=env,
    )
    assert "CANARY" not in out.stdout
    assert json.loads(out.stdout)["variables"]["OMP_NUM_THREADS"] == "2"
