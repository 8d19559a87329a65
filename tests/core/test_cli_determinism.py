"""`mlrepro check-determinism`: a user's script, run twice under one seed, its reported metrics compared."""

from __future__ import annotations

import json
from pathlib import Path

from repro_common.cli.determinism import metrics_from_stdout
from support.procs import clean_env, run_cli

SCRIPT = """
import json, os, random, sys

import repro_common

repro_common.seed_everything()  # MLREPRO_SEED, set by check-determinism
losses = [round(random.random(), 12) for _ in range(5)]
if "--leak" in sys.argv:  # an unseeded source of randomness
    losses[3] += int.from_bytes(os.urandom(4), "big") / 2**32 + 1e-3
print("epoch 1 done")
print("MLREPRO_METRICS " + json.dumps({"loss": losses, "seed": int(os.environ["MLREPRO_SEED"])}))
print("bye")
"""


def _script(tmp_path: Path, body: str = SCRIPT, name: str = "train.py") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_a_seeded_script_is_reported_deterministic(tmp_path: Path) -> None:
    proc = run_cli("check-determinism", "--seed", "42", str(_script(tmp_path)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("deterministic: 2 runs of ")
    assert "seed 42" in proc.stdout and "bitwise" in proc.stdout


def test_an_unseeded_source_is_caught_with_the_first_difference(tmp_path: Path) -> None:
    proc = run_cli(
        "check-determinism", "--seed", "42", str(_script(tmp_path)), "--leak", cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    assert "not deterministic" in proc.stdout and "at loss[3]" in proc.stdout


def test_json_output_carries_the_metrics_of_every_run(tmp_path: Path) -> None:
    proc = run_cli(
        "check-determinism",
        "--runs",
        "3",
        "--json",
        str(_script(tmp_path)),
        "--leak",
        cwd=tmp_path,
        env=clean_env(MLREPRO_SEED="7"),
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["deterministic"] is False and doc["first_difference"] == "loss[3]"
    assert doc["seed"] == 7 and doc["args"] == ["--leak"] and doc["differing_run"] == 2
    assert [m["seed"] for m in doc["metrics"]] == [7, 7, 7]
    assert doc["metrics"][0]["loss"][:3] == doc["metrics"][2]["loss"][:3]


def test_without_a_seed_one_is_drawn_and_shared_by_the_runs(tmp_path: Path) -> None:
    proc = run_cli("check-determinism", "--json", str(_script(tmp_path)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["metrics"][0]["seed"] == doc["metrics"][1]["seed"] == doc["seed"]


def test_a_last_line_json_object_is_enough(tmp_path: Path) -> None:
    body = "import json, repro_common, random\nrepro_common.seed_everything()\nprint(json.dumps({'acc': random.random()}))\n"
    proc = run_cli(
        "check-determinism", "--atol", "1e-9", str(_script(tmp_path, body)), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "within rtol=0.0, atol=1e-09" in proc.stdout


def test_the_convention_is_documented_in_help() -> None:
    proc = run_cli("check-determinism", "--help")
    assert proc.returncode == 0
    assert "MLREPRO_METRICS " in proc.stdout and "last line" in proc.stdout


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    silent = _script(tmp_path, "print('trained')\n", "silent.py")
    crashing = _script(tmp_path, "raise SystemExit('out of memory')\n", "crash.py")
    cases = {
        ("check-determinism", str(tmp_path / "missing.py")): "no such script",
        ("check-determinism", str(silent)): "reported no metrics",
        ("check-determinism", str(crashing)): "exited with status 1: out of memory",
        ("check-determinism", "--seed", "-1", str(silent)): "0 to 4294967295",
        ("check-determinism", "--seed", "abc", str(silent)): "'abc' is not a seed",
        ("check-determinism", "--runs", "1", str(silent)): "x>=2",
    }
    for args, message in cases.items():
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
    proc = run_cli(
        "check-determinism", str(silent), cwd=tmp_path, env=clean_env(MLREPRO_SEED="abc")
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mlrepro: error: MLREPRO_SEED='abc' is not a seed: expected an integer from 0 to 4294967295 (2**32-1)"
    ]


def test_metrics_lines_are_parsed_in_order() -> None:
    out = 'noise\nMLREPRO_METRICS {"loss": 1}\nMLREPRO_METRICS {"loss": 0.5}\n{"not": "used"}\n'
    assert metrics_from_stdout(out) == [{"loss": 1}, {"loss": 0.5}]
    assert metrics_from_stdout('x\n{"loss": 2}\n\n') == {"loss": 2}
    assert metrics_from_stdout("x\n[1, 2]\n") is None
