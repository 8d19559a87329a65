"""Seeds: the same seed gives the same draws in fresh processes, and every run says how it was seeded."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import blake3
import pytest

from repro_common import seeds
from repro_common.manifest import Manifest
from support.procs import clean_env, run_python


def _last_json(stdout: str) -> Any:
    return json.loads(stdout.strip().splitlines()[-1])


DRAWS_SCRIPT = """
import json, random, sys

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import repro_common as rc


class Augmented(Dataset):
    \"\"\"Every item is drawn afresh: torch.distributions, numpy, random and torch in the worker.\"\"\"

    def __init__(self):
        self.jitter = torch.distributions.Normal(0.0, 1.0)
        self.scale = torch.distributions.Uniform(0.5, 1.5)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = torch.utils.data.get_worker_info()
        return torch.tensor([
            float(i), float(info.id), self.jitter.sample().item(), self.scale.sample().item(),
            float(np.random.rand()), random.random(), torch.rand(()).item(),
        ], dtype=torch.float64)


if __name__ == "__main__":
    rc.seed_everything(int(sys.argv[1]))
    out = {
        "random": [random.random() for _ in range(3)],
        "numpy": np.random.rand(3).tolist(),
        "torch": torch.rand(3).tolist(),
        "numpy_generator": rc.seeds.numpy_generator("data_split").random(3).tolist(),
        "torch_generator": torch.rand(3, generator=rc.seeds.torch_generator("init")).tolist(),
        "derived": rc.derive_seed("dropout"),
    }
    loader = DataLoader(
        Augmented(), batch_size=4, shuffle=True, num_workers=2, **rc.seeds.dataloader_kwargs("augmentation")
    )
    out["epochs"] = [torch.cat(list(loader)).tolist() for _ in range(2)]
    print(json.dumps(out))
"""


def _draws(tmp_path: Path, seed: int, **env: str) -> dict[str, Any]:
    script = tmp_path / "draws.py"
    script.write_text(DRAWS_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(seed)],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return _last_json(proc.stdout)


def _order(epoch: list[list[float]]) -> list[float]:
    return [row[0] for row in epoch]


def _augment(epoch: list[list[float]]) -> list[list[float]]:
    return [row[2:] for row in sorted(epoch)]  # per item, whatever order it came in


def test_same_seed_same_draws_in_fresh_processes_and_a_new_seed_changes_them(
    tmp_path: Path,
) -> None:
    first = _draws(tmp_path, 123)
    second = _draws(tmp_path, 123)
    other = _draws(tmp_path, 124)

    assert first == second
    for key in ("random", "numpy", "torch", "numpy_generator", "torch_generator", "derived"):
        assert first[key] != other[key], key
    assert _order(first["epochs"][0]) != _order(other["epochs"][0])
    assert _augment(first["epochs"][0]) != _augment(other["epochs"][0])

    # Workers really ran (ids 0 and 1), and each epoch shuffles and augments anew.
    epoch1, epoch2 = first["epochs"]
    assert {row[1] for row in epoch1} == {0.0, 1.0}
    assert _order(epoch1) != _order(epoch2)
    for column in range(
        5
    ):  # torch.distributions x2, numpy, random, torch: none repeats across epochs
        assert [r[column] for r in _augment(epoch1)] != [r[column] for r in _augment(epoch2)], (
            column
        )

    # Under DDP every rank has the same seed: same shuffling generator, different augmentation.
    rank1 = _draws(tmp_path, 123, RANK="1", WORLD_SIZE="2")
    assert _order(rank1["epochs"][0]) == _order(epoch1)
    assert _augment(rank1["epochs"][0]) != _augment(epoch1)


def test_worker_init_fn_survives_pickling_for_spawned_workers() -> None:
    pytest.importorskip("torch")
    kwargs = seeds.dataloader_kwargs("augmentation", seed=5)
    clone = pickle.loads(pickle.dumps(kwargs["worker_init_fn"]))
    assert clone.keywords == {"rank": 0}
    assert seeds.derive_seed("augmentation", seed=5) == kwargs["generator"].initial_seed()


def test_derive_seed_is_pinned_across_versions_and_machines() -> None:
    pinned = {
        (0, "data_split"): 1764563424,
        (42, "init"): 2167937134,
        (42, "dropout"): 865153174,
        (2**32 - 1, "augmentation"): 1697445620,
        (7, "ünïcode name"): 533506148,
    }
    for (seed, name), value in pinned.items():
        assert seeds.derive_seed(name, seed=seed) == value
    # The scheme, for anyone re-deriving outside Python: first 4 bytes (big-endian) of blake3.
    expected = int.from_bytes(blake3.blake3(b"mlrepro.derive_seed/1:42:init").digest()[:4], "big")
    assert expected == 2167937134


def test_derive_seed_ignores_pythons_salted_hash(tmp_path: Path) -> None:
    code = (
        "from repro_common import derive_seed; print(derive_seed('split', seed=9), hash('split'))"
    )
    a = run_python(code, env=clean_env(PYTHONHASHSEED="1")).stdout.split()
    b = run_python(code, env=clean_env(PYTHONHASHSEED="2")).stdout.split()
    assert a[1] != b[1] and a[0] == b[0]


def test_seed_comes_from_argument_then_mlrepro_seed_then_lightning_then_the_os(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLREPRO_SEED", "11")
    monkeypatch.setenv("PL_GLOBAL_SEED", "22")
    record = seeds.seed_everything(5, workers=False)
    assert (record["global"], record["source"], record["seeded"]) == (5, "argument", True)
    assert os.environ["PL_GLOBAL_SEED"] == "5" and os.environ["PL_SEED_WORKERS"] == "0"
    monkeypatch.setenv("PL_GLOBAL_SEED", "22")
    assert seeds.seed_everything()["source"] == "MLREPRO_SEED"
    assert os.environ["PL_SEED_WORKERS"] == "1"
    assert os.environ["PL_GLOBAL_SEED"] == "11"
    monkeypatch.delenv("MLREPRO_SEED")
    monkeypatch.setenv("PL_GLOBAL_SEED", "22")
    assert seeds.seed_everything()["global"] == 22
    monkeypatch.delenv("PL_GLOBAL_SEED")
    drawn = seeds.seed_everything()
    assert drawn["source"] == "os" and 0 <= drawn["global"] <= 2**32 - 1
    assert os.environ["PL_GLOBAL_SEED"] == str(
        drawn["global"]
    )  # drawn, and recorded for sub-processes


def test_derived_seeds_are_recorded_in_the_manifest_and_forgotten_on_reseed() -> None:
    seeds.seed_everything(42)
    assert seeds.derive_seed("init") == 2167937134
    seeds.derive_seed("dropout")
    import repro_common

    manifest = repro_common.capture()
    assert manifest.seeds["derived"] == {"dropout": 865153174, "init": 2167937134}
    assert manifest.seeds["global"] == 42
    manifest.validate()
    Manifest.from_json(manifest.to_json()).validate()
    seeds.seed_everything(43)
    assert seeds.collect_seeds([])["derived"] == {}


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "42", True])
def test_bad_seeds_name_the_accepted_range(bad: Any) -> None:
    with pytest.raises(ValueError, match="0 to 4294967295"):
        seeds.seed_everything(bad)
    with pytest.raises(ValueError, match="0 to 4294967295"):
        seeds.derive_seed("init", seed=bad)


@pytest.mark.parametrize("variable", ["MLREPRO_SEED", "PL_GLOBAL_SEED"])
def test_a_seed_variable_that_is_not_a_number_gives_one_clear_message(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "abc")
    with pytest.raises(ValueError) as info:
        seeds.seed_everything()
    assert (
        str(info.value)
        == f"{variable}='abc' is not a seed: expected an integer from 0 to 4294967295 (2**32-1)"
    )


def test_mlrepro_seed_abc_fails_a_script_with_one_line() -> None:
    proc = run_python(
        "import repro_common; repro_common.seed_everything()",
        env=clean_env(MLREPRO_SEED="abc"),
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "ValueError: MLREPRO_SEED='abc' is not a seed: expected an integer from 0 to 4294967295 (2**32-1)"
    )


def test_derive_seed_without_any_global_seed_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="call seed_everything"):
        seeds.derive_seed("init")
    with pytest.raises(ValueError, match="non-empty name"):
        seeds.derive_seed("", seed=1)


def test_a_run_nobody_seeded_is_marked_unseeded_and_nothing_gets_imported() -> None:
    proc = run_python(
        """
        import json, sys
        from repro_common.seeds import collect_seeds
        errors = []
        record = collect_seeds(errors)
        record["imported"] = sorted(m for m in ("numpy", "torch", "keras", "lightning") if m in sys.modules)
        record["errors"] = errors
        print(json.dumps(record))
        """
    )
    record = _last_json(proc.stdout)
    assert (record["global"], record["source"], record["seeded"]) == (None, "none", False)
    assert record["imported"] == [] and record["errors"] == []
    assert set(record["rng_digests"]) == {"random"}
    assert record["determinism"]["torch_deterministic_algorithms"] is None


def test_passive_capture_records_lightnings_own_seed_everything() -> None:
    proc = run_python(
        """
        import json
        import lightning as L
        import numpy as np
        L.seed_everything(777, workers=True)
        import repro_common
        manifest = repro_common.capture()
        manifest.validate()
        print(json.dumps(manifest.seeds))
        """
    )
    record = _last_json(proc.stdout)
    assert (record["global"], record["source"], record["seeded"]) == (777, "passive", True)
    assert record["rng_digests"]["torch_initial_seed"] == 777
    assert {"random", "numpy", "torch"} <= set(record["rng_digests"])
    assert record["ranks"]["seeds"] == {"0": 777}


def test_passive_capture_of_torch_manual_seed_and_of_an_unseeded_torch() -> None:
    code = """
        import json, sys, torch
        if sys.argv[1] == "seed":
            torch.manual_seed(99)
        from repro_common.seeds import collect_seeds
        print(json.dumps(collect_seeds([])))
        """
    seeded = _last_json(run_python(code, args=["seed"]).stdout)
    assert (seeded["global"], seeded["source"], seeded["seeded"]) == (99, "torch", True)
    unseeded = _last_json(run_python(code, args=["no"]).stdout)
    assert (unseeded["global"], unseeded["source"], unseeded["seeded"]) == (None, "none", False)
    assert unseeded["rng_digests"]["torch"] != seeded["rng_digests"]["torch"]


def test_rng_digests_follow_the_state_and_repeat_for_the_same_seed() -> None:
    code = """
        import json, random
        import numpy as np
        import repro_common
        repro_common.seed_everything(3)
        before = repro_common.seeds.collect_seeds([])["rng_digests"]
        random.random(); np.random.rand()
        after = repro_common.seeds.collect_seeds([])["rng_digests"]
        print(json.dumps([before, after]))
        """
    before, after = _last_json(run_python(code).stdout)
    again, _ = _last_json(run_python(code).stdout)
    assert before == again
    assert before["random"] != after["random"] and before["numpy"] != after["numpy"]


def test_hash_randomization_is_the_interpreters_not_the_variable_set_later() -> None:
    code = """
        import json, os, sys
        if len(sys.argv) > 1:
            os.environ["PYTHONHASHSEED"] = sys.argv[1]  # too late for this interpreter
        from repro_common.seeds import collect_seeds
        record = collect_seeds([])
        print(json.dumps([record["hash_randomization"], record["determinism"]["PYTHONHASHSEED"]]))
        """
    assert _last_json(run_python(code, env=clean_env(PYTHONHASHSEED="0")).stdout) == [
        {"enabled": False, "pythonhashseed_at_start": "0"},
        "0",
    ]
    assert _last_json(run_python(code, env=clean_env(PYTHONHASHSEED="123")).stdout)[0] == {
        "enabled": False,
        "pythonhashseed_at_start": "123",
    }
    late = _last_json(run_python(code, args=["0"]).stdout)
    assert late == [{"enabled": True, "pythonhashseed_at_start": None}, "0"]


def test_deterministic_mode_turns_the_switches_on_and_records_them() -> None:
    proc = run_python(
        """
        import json, os, warnings
        import torch
        from repro_common import seeds
        seeds._cuda_initialised = lambda: True  # as if CUDA had already run: warn once, not twice
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record = seeds.seed_everything(3, deterministic=True)
            seeds.seed_everything(3, deterministic=True)
        print(json.dumps({
            "record": record,
            "torch": [torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                      torch.backends.cudnn.benchmark],
            "env": [os.environ["CUBLAS_WORKSPACE_CONFIG"], os.environ["PYTHONHASHSEED"]],
            "warnings": [str(w.message) for w in caught],
        }))
        """
    )
    out = _last_json(proc.stdout)
    assert out["torch"] == [True, True, False]
    assert out["env"] == [":4096:8", "3"]
    assert out["record"]["determinism"] == {
        "torch_deterministic_algorithms": True,
        "cudnn_deterministic": True,
        "cudnn_benchmark": False,
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "PYTHONHASHSEED": "3",
    }
    assert (
        out["record"]["hash_randomization"]["enabled"] is True
    )  # the child processes get the fixed seed
    assert len([w for w in out["warnings"] if "CUDA was initialised" in w]) == 1


def test_deterministic_mode_before_importing_torch_says_to_import_it_first() -> None:
    proc = run_python(
        """
        import sys, warnings
        import repro_common
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            record = repro_common.seed_everything(8, deterministic=True)
        print("torch" in sys.modules, record["frameworks"], [str(w.message) for w in caught])
        """
    )
    assert proc.stdout.startswith("False ['random'] ")
    assert "import torch first" in proc.stdout


def test_torch_imported_after_seeding_is_flagged_in_the_capture_errors() -> None:
    proc = run_python(
        """
        import json
        import repro_common
        repro_common.seed_everything(8)
        import torch
        errors = []
        repro_common.seeds.collect_seeds(errors)
        print(json.dumps(errors))
        """
    )
    errors = _last_json(proc.stdout)
    assert errors and "import torch before calling seed_everything" in errors[0]["error"]
