"""The plugin never touches the host's state: a slow server must not shift the user's RNG streams."""

from __future__ import annotations

import json
from pathlib import Path

from support.git import make_repo
from support.records import proxy_url, run_mlflow_script, stalling_proxy

TRAIN = """\
import json, os, random
import numpy as np
import mlflow

random.seed(1234)
np.random.seed(1234)
with mlflow.start_run():
    pass
if os.environ.get("MLREPRO_DISABLE") != "1":
    import mlflow_repro_plugin as repro

    assert repro.flush(120), "the upload did not finish"
# The user's training goes on after the upload retried in the background.
streams = {
    "random": [random.random().hex() for _ in range(5)],
    "numpy": [float(x).hex() for x in np.random.random(5)],
    "getstate": repr(random.getstate()[1][:8]),
}
print("STREAMS=" + json.dumps(streams))
"""


def _streams(repo: Path, uri: str, **env: str) -> dict[str, object]:
    proc = run_mlflow_script(
        repo,
        uri,
        # Only our retry loop bridges the stall (MLflow's own urllib3 retries add their jitter).
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_EXPERIMENT_NAME="host-state",
        **env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("STREAMS=")][-1]
    return dict(json.loads(line[len("STREAMS=") :]))


def test_upload_retries_against_a_stalling_server_leave_the_users_random_streams_alone(
    tmp_path: Path, mlflow_server_uri: str
) -> None:
    repo = make_repo(tmp_path / "project", {"train.py": TRAIN})
    with stalling_proxy(mlflow_server_uri, failures=3) as proxy:
        with_plugin = _streams(repo, proxy_url(proxy))
        assert proxy.failures_served == 3  # the uploader met the stall and retried through it
    with stalling_proxy(mlflow_server_uri, failures=3) as proxy:
        without = _streams(repo, proxy_url(proxy), MLREPRO_DISABLE="1")
        assert proxy.failures_served == 0  # disabled: nothing was uploaded
    assert with_plugin == without  # bit for bit: float.hex of every draw
