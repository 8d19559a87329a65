"""Fresh interpreters: importing, exiting, and the bound on how long exit may wait for us."""

from __future__ import annotations

import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from mlflow_reads import fresh_env, inputs, repro_names

from support.git import make_repo
from support.procs import run_python

COUNT_PROVIDERS = """
import mlflow
from mlflow.tracking.context.registry import _run_context_provider_registry as registry
from mlflow_repro_plugin.provider import ReproRunContextProvider
print("PROVIDERS", sum(isinstance(p, ReproRunContextProvider) for p in registry))
"""


def test_import_mlflow_loads_the_provider_once_without_warnings(tmp_path: Path) -> None:
    proc = run_python(
        "import warnings; warnings.simplefilter('always')\n" + COUNT_PROVIDERS, cwd=tmp_path
    )
    assert "PROVIDERS 1" in proc.stdout
    assert "Failure attempting to register" not in proc.stderr, proc.stderr


def test_importing_the_provider_before_mlflow_still_registers_it_once(tmp_path: Path) -> None:
    proc = run_python(
        "import warnings; warnings.simplefilter('always')\n"
        "import mlflow_repro_plugin.provider\n" + COUNT_PROVIDERS,
        cwd=tmp_path,
    )
    assert "PROVIDERS 1" in proc.stdout
    assert "Failure attempting to register" not in proc.stderr, proc.stderr


def test_importing_the_package_does_not_import_mlflow(tmp_path: Path) -> None:
    proc = run_python(
        """
        import sys
        import mlflow_repro_plugin as repro
        assert callable(repro.track_data) and callable(repro.capture) and callable(repro.flush)
        print("MLFLOW", "mlflow" in sys.modules)
        """,
        cwd=tmp_path,
    )
    assert "MLFLOW False" in proc.stdout


SCRIPT = """
import threading
import mlflow
import mlflow_repro_plugin as repro

repro.track_data(b"labels", "labels")
with mlflow.start_run(run_name="parent") as parent:
    with mlflow.start_run(run_name="child", nested=True) as child:
        repro.track_data(b"child input", "child-input")
ids = {"parent": parent.info.run_id, "child": child.info.run_id}

def in_thread():
    with mlflow.start_run(run_name="thread") as run:
        ids["thread"] = run.info.run_id

worker = threading.Thread(target=in_thread)
worker.start()
worker.join()
ids["open"] = mlflow.start_run(run_name="left-open").info.run_id  # MLflow's atexit ends it
for name, run_id in ids.items():
    print("RUN", name, run_id)
"""


def _runs(stdout: str) -> dict[str, str]:
    return {
        line.split()[1]: line.split()[2] for line in stdout.splitlines() if line.startswith("RUN ")
    }


def test_every_run_of_a_script_has_its_artifacts_once_the_process_has_exited(
    tmp_path: Path,
) -> None:
    project = make_repo(tmp_path / "project", {"train.py": SCRIPT})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_python("exec(open('train.py').read())", cwd=project, env=fresh_env(uri))
    runs = _runs(proc.stdout)
    assert set(runs) == {"parent", "child", "thread", "open"}, proc.stdout + proc.stderr

    client = MlflowClient(uri)
    for name, run_id in runs.items():
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED", name
        assert repro_names(client, run_id) == {"manifest.json"}, name
        assert "repro.capture.errors" not in run.data.tags, (name, run.data.tags)
    assert set(inputs(client, runs["parent"])) == {"labels"}
    assert set(inputs(client, runs["child"])) == {"labels", "child-input"}
    assert "mlrepro" not in proc.stderr, proc.stderr


HANGING_UPLOAD = """
import threading, time
import mlflow
from mlflow_repro_plugin import uploader

def never_found(*args, **kwargs):
    threading.Event().wait()  # a store that never answers

uploader.find_runs = never_found
with mlflow.start_run() as run:
    mlflow.log_metric("loss", 1.0)
print("RUN", run.info.run_id, flush=True)
print("ENDED", time.time(), flush=True)  # the script is done: the rest is the exit wait
"""


def exit_wait(
    tmp_path: Path, script: str = HANGING_UPLOAD, **env: str
) -> tuple[float, str, str, str]:
    """Run HANGING_UPLOAD: (seconds from the script's end to the exit, run id, stdout, stderr)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_python(script, cwd=tmp_path, env=fresh_env(uri, **env), timeout=240)
    exited = time.time()
    run_id = proc.stdout.split("RUN ", 1)[1].split()[0]
    ended = float(proc.stdout.split("ENDED ", 1)[1].split()[0])
    client = MlflowClient(uri)
    # Announced at creation, never delivered: the run reads as incomplete, no note to clean up.
    assert client.get_run(run_id).data.tags["repro.artifacts"] == "manifest.json"
    assert repro_names(client, run_id) == set()
    return exited - ended, run_id, proc.stdout, proc.stderr


def test_exit_waits_for_uploads_at_most_the_upload_timeout(tmp_path: Path) -> None:
    waited, _, _, stderr = exit_wait(tmp_path, MLREPRO_UPLOAD_TIMEOUT="2")
    assert "still had repro/ artifacts to upload after 2s" in stderr, stderr
    assert stderr.count("mlrepro") == 1, stderr
    # 2 s, plus the interpreter's own shutdown; far below the 30 s default.
    assert 1.5 <= waited < 15, f"exit waited {waited:.1f}s for a 2 s MLREPRO_UPLOAD_TIMEOUT"


# The exit hook's own wait, recorded as asked and then cut short: the default's value is read
# from the hook itself; that it really waits that long is the 2 s test above.
RECORD_EXIT_WAIT = """
from mlflow_repro_plugin import uploader

real_flush = uploader.UPLOADER.flush

def recorded_flush(timeout=None):
    print("EXIT_WAIT", timeout, flush=True)
    return real_flush(min(timeout, 0.5))

uploader.UPLOADER.flush = recorded_flush
"""


def test_the_documented_upload_timeout_default_is_30_seconds(tmp_path: Path) -> None:
    """README: MLREPRO_UPLOAD_TIMEOUT defaults to 30 s: unset, exit sets out to wait 30 s."""
    script = HANGING_UPLOAD.replace(
        "uploader.find_runs = never_found\n",
        "uploader.find_runs = never_found\n" + RECORD_EXIT_WAIT,
    )
    assert script != HANGING_UPLOAD
    waited, _, stdout, stderr = exit_wait(tmp_path, script)
    asked = [float(line.split()[1]) for line in stdout.splitlines() if line.startswith("EXIT_WAIT")]
    assert asked and 29 <= asked[0] <= 30, f"exit set out to wait {asked}s by default\n{stderr}"
    assert "still had repro/ artifacts to upload after 30s" in stderr, stderr
    assert waited < 15  # cut short by the recording flush: the test itself does not wait 30 s


def test_disabled_in_a_fresh_process_no_tags_no_threads(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_python(
        """
        import threading
        import mlflow
        with mlflow.start_run() as run:
            pass
        print("RUN", run.info.run_id)
        print("THREADS", sorted(t.name for t in threading.enumerate() if t.name.startswith("mlrepro")))
        import sys
        print("CORE", "repro_common" in sys.modules)
        """,
        cwd=tmp_path,
        env=fresh_env(uri, MLREPRO_DISABLE="1"),
    )
    assert "THREADS []" in proc.stdout
    assert "CORE False" in proc.stdout, "disabled, `import mlflow` must not even import the core"
    run_id = proc.stdout.split("RUN ", 1)[1].split()[0]
    client = MlflowClient(uri)
    assert not [k for k in client.get_run(run_id).data.tags if k.startswith("repro.")]
    assert repro_names(client, run_id) == set()
