"""A sweep's runs log the same dataset at once: each run keeps it in its Datasets panel.

MLflow's SQL store looks a dataset up and inserts it when missing, in two steps, so two
runs of one experiment logging the same (name, digest) at the same moment can both
miss it and the second insert fails on the table's key: a BAD_REQUEST that says
"duplicate key". Retrying finds the row the other run inserted.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

pytestmark = [pytest.mark.team]

RUNS = 16
ATTEMPTS = 3


def test_runs_logging_one_dataset_at_the_same_moment_all_keep_it(
    team_stack: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from mlflow_repro_plugin import failures
    from mlflow_repro_plugin.datasets import log_items

    failures._warned.clear()  # a warning said by an earlier test would hide this one's
    client = team_stack.client()
    item = {
        "name": "train",
        "fingerprint": "blake3:" + "7" * 64,
        "kind": "file",
        "source": "/data/train.csv",
        "size_bytes": 1024,
    }
    caplog.set_level(logging.WARNING, logger="mlrepro")
    for attempt in range(ATTEMPTS):
        # A fresh experiment each time: the race is on the first insert of the dataset.
        experiment_id = client.create_experiment(f"sweep-{attempt}-{time.time_ns()}")
        run_ids = [client.create_run(experiment_id).info.run_id for _ in range(RUNS)]
        start = threading.Barrier(RUNS)

        def log(run_id: str, start: threading.Barrier) -> None:
            start.wait()
            log_items(client, run_id, [item], time.monotonic() + 30)

        threads = [threading.Thread(target=log, args=(run_id, start)) for run_id in run_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        missing = [run_id for run_id in run_ids if not client.get_run(run_id).inputs.dataset_inputs]
        assert not missing, f"attempt {attempt}: {len(missing)} of {RUNS} runs lost the input"
    assert "could not log tracked inputs" not in caplog.text


def test_a_duplicate_that_stays_is_given_up_after_a_few_tries_not_at_the_deadline(
    team_stack: Any,
) -> None:
    """Should the store keep refusing the same row, the user's exit must not wait 30 s."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    from mlflow_repro_plugin.failures import MAX_RACES, retry

    client = team_stack.client()
    run_id = client.create_run(client.create_experiment(f"dup-{time.time_ns()}")).info.run_id
    calls = []

    def insert_again() -> None:
        # A real refusal from the real store: a param may not change its value.
        calls.append(1)
        client.log_param(run_id, "lr", "0.1")
        client.log_param(run_id, "lr", "0.2")

    with pytest.raises(MlflowException):
        retry(insert_again, time.monotonic() + 30)
    assert len(calls) == 1  # a bad request that is no race: not retried

    def raced() -> None:
        calls.append(1)
        raise MlflowException(
            'duplicate key value violates unique constraint "dataset_pk"', error_code=BAD_REQUEST
        )

    calls.clear()
    started = time.monotonic()
    with pytest.raises(MlflowException):
        retry(raced, time.monotonic() + 30)
    assert len(calls) == MAX_RACES + 1
    assert time.monotonic() - started < 5
