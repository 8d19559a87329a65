"""Importing the adapter is free; a missing host is reported when a callback is built."""

from __future__ import annotations

import json

import pytest

from support.procs import clean_env, run_python


def test_import_loads_no_tracker_and_no_framework():
    proc = run_python(
        """
        import json, sys
        import wandb_repro_plugin as repro
        import wandb_repro_plugin.keras, wandb_repro_plugin.lightning
        heavy = ["wandb", "keras", "lightning", "pytorch_lightning", "torch", "tensorflow"]
        print(json.dumps({
            "loaded": [m for m in heavy if m in sys.modules],
            "names": sorted(n for n in repro.__all__ if callable(getattr(repro, n))),
        }))
        """
    )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["loaded"] == []
    assert {
        "attach",
        "capture",
        "seed_everything",
        "derive_seed",
        "check_determinism",
        "fingerprint",
        "track_data",
        "Manifest",
    } <= set(found["names"])


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [
        ("keras", ["keras"], "mlrepro[keras]"),
        ("keras", ["wandb"], "mlrepro[keras]"),
        ("lightning", ["lightning", "pytorch_lightning"], "mlrepro[lightning]"),
        ("lightning", ["wandb"], "mlrepro[lightning]"),
    ],
)
def test_missing_host_is_an_import_error_naming_the_extra(module, missing, extra):
    proc = run_python(
        f"""
        import sys
        for name in {missing!r}:
            sys.modules[name] = None  # what an environment without the library looks like
        from wandb_repro_plugin.{module} import ReproCallback  # importing is fine
        try:
            ReproCallback()
        except ImportError as exc:
            print("ImportError:", exc)
        else:
            print("built")
        """,
        env=clean_env(KERAS_BACKEND="torch"),
    )
    out = proc.stdout.strip()
    assert out.startswith("ImportError:") and f"pip install '{extra}'" in out, out
