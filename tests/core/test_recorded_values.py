"""Fingerprints and manifest digests users have already recorded come out byte for byte the same.

Every value below was computed once and written down: a change to an encoding, to the
digest framing, to the folder walk or to the manifest rules makes an old record look
changed (or a changed input look the same), so it must fail here first. The inputs are
built deterministically (no randomness, no clock); nothing is read from the host.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Subset, TensorDataset

from repro_common import fingerprint
from repro_common.manifest import Manifest, environment_digest, manifest_digest

# -- the inputs -------------------------------------------------------------------


def _pattern(size: int) -> bytes:
    """`size` bytes that are not all alike (a run of zeros would hide a framing slip)."""
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


class _Items:
    """A map-style dataset of plain Python values: the generic item encoding."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> Any:
        return [
            {"x": 1.5, "y": [1, 2, None], "label": "cat"},
            (True, b"\x00\x01", 3 + 4j),
            -(10**30),
        ][index]


class _Versioned:
    """The `__fingerprint__()` protocol: the object's own version id stands for its content."""

    def __fingerprint__(self) -> str:
        return "dataset-v7@sha256:abc"


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "int": np.arange(4, dtype=np.int64),
            "float": np.array([0.5, -1.25, np.nan, 1e300]),
            "text": pd.Series(["a", "bé", "", "d"], dtype=object),
            "masked": pd.array([1, None, 3, 4], dtype="Int64"),
            "cat": pd.Categorical(["x", "y", "x", "z"]),
            "when": pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC"),
        },
        index=pd.Index([10, 20, 30, 40], name="row"),
    )


def _tensor() -> torch.Tensor:
    return torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 7


OBJECTS: dict[str, Callable[[], Any]] = {
    "bytes": lambda: _pattern(1000),
    "bytes-empty": lambda: b"",
    "memoryview-strided": lambda: memoryview(_pattern(64))[::3],
    "ndarray-int32": lambda: np.arange(12, dtype=np.int32).reshape(3, 4),
    "ndarray-fortran": lambda: np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    "ndarray-noncontiguous-view": lambda: np.arange(60, dtype=np.float64).reshape(6, 10)[::2, 1::3],
    "ndarray-big-endian": lambda: np.arange(12, dtype=">i4").reshape(3, 4),
    "ndarray-structured": lambda: np.array(
        [(1, 2.5), (3, -1.0)], dtype=[("id", "<i4"), ("score", "<f8")]
    ),
    "ndarray-unicode": lambda: np.array(["ab", "c", "δ"]),
    "numpy-scalar": lambda: np.float32(1.25),
    "dataframe": _frame,
    "series": lambda: pd.Series([1.0, 2.0, 3.0], name="s", index=["a", "b", "c"]),
    "index": lambda: pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"]),
    "tensor-float32": _tensor,
    "tensor-transposed": lambda: _tensor().transpose(0, 2),
    "tensor-bfloat16": lambda: torch.arange(8, dtype=torch.bfloat16) / 3,
    "tensor-int64": lambda: torch.tensor([[1, -2], [3, 2**40]]),
    "tensor-dataset": lambda: TensorDataset(_tensor().reshape(6, 4), torch.arange(6)),
    "subset": lambda: Subset(TensorDataset(torch.arange(10)), [7, 2, 5]),
    "concat-dataset": lambda: ConcatDataset(
        [TensorDataset(torch.arange(3)), TensorDataset(torch.arange(3, 7))]
    ),
    "dataloader": lambda: DataLoader(
        TensorDataset(torch.arange(10.0)), batch_size=4, drop_last=True
    ),
    "map-style-items": _Items,
    "map-style-partial": lambda: _fingerprint_partial(_Items()),
    "protocol": _Versioned,
}

RECORDED: dict[str, str] = {
    "bytes": "blake3:a6928a111ce1ed624b94771a353ae95813d24413e4d8548d3be02905eb99e406",
    "bytes-empty": "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    "concat-dataset": "blake3:c7b3f7278e4c257ba26b514093d0b79fe2e8111939d3230e01cfac1c2a00e058",
    "dataframe": "blake3:d5763f549a4f8b7ffdcc8060ead994061505f828a4df948a091353b7d4d77d15",
    "dataloader": "blake3:dfe0e98337a8b7958b3fa5190b8624f58afd3b61200a668b0cae07cd0a40f68d",
    "index": "blake3:d64aebe6f1d027f61387a71eeacdf7ee5a14a1088ea12007c1ac99c85ed97c7c",
    "map-style-items": "blake3:ea6b7bba889927d0cb82cb8a71c6d28f557025f9e8bb961323aa5bf23703d879",
    "map-style-partial": "blake3:b64cdffe71e431a759872a3ec30d340ddaf392c14c766de8fc31bf8e1f656ef7",
    "memoryview-strided": "blake3:ae3a144aa729b1f0cb34fe460f8cc73742c68c4028bfe0253928769f7d620351",
    # the same values in C, Fortran and big-endian order: one fingerprint
    "ndarray-big-endian": "blake3:186a306ed08b0c8d21a02318e9962d2a2506d35e51a39fc0ab9626d38d79068a",
    "ndarray-fortran": "blake3:186a306ed08b0c8d21a02318e9962d2a2506d35e51a39fc0ab9626d38d79068a",
    "ndarray-int32": "blake3:186a306ed08b0c8d21a02318e9962d2a2506d35e51a39fc0ab9626d38d79068a",
    "ndarray-noncontiguous-view": "blake3:77e05fb08f3166375a7388b31ae480d7025cf76833a29b4e8034909da3e02369",
    "ndarray-structured": "blake3:8de219d45103faa2ce3053d0b42d1a84a6be0b9d90ee951a114983b05456f397",
    "ndarray-unicode": "blake3:ac6bc3bd3b29152392444482d80ff41b3971c0ae9737d1bf3f3bd41ad766b4fc",
    "numpy-scalar": "blake3:72e10046c3d026439baff1eabbaea52f7199aa69bb5758a6dc67ca8f6e0141e1",
    "protocol": "blake3:7945912acb4d543ef988b91fe2cf44b9a9ec438f9335c0b4a5dd48b8432f90f1",
    "series": "blake3:aed5b21082756050266130196606f7db8cb54a43c4fe4c3494a1335e7e254de0",
    "subset": "blake3:ccb7c4ca34094f71ae85626b7d5856b9f2cda567e26badda8e28adb5294babd4",
    "tensor-bfloat16": "blake3:3911a61cc2e37c8c184ecb6423b142d02707c89f0cd030cedec3260c4173e0ca",
    "tensor-dataset": "blake3:757844fa30558ceb008278cb58865c1cb52cd989790a4c4b213d90c2a0df8c34",
    "tensor-float32": "blake3:aa22964d30c04ed2ae9c12fd34b865ea759563954c000bbd6dc30e5df2e4c2bb",
    "tensor-int64": "blake3:9135526820624e97faade7e32bd921a6d25aee83f7bef2a544a26a2cdffdc827",
    "tensor-transposed": "blake3:0491c021af6c006ad2f8b327b94c9a32722c83b514ffa6d4f1ce8acfd118e028",
    "file-small": "blake3:7d382cba369862cde7e3c368cc1dd8ece378e3b0aac77f5afa3099932149ed64",
    "file-large": "blake3:76a3e994d64e0ca5f1305f929962c3bc7859f16863ec7b5f55350e6b91f434b2",
    "folder": "blake3:b1ec09ecf23d720c3bbee68a554c35ba0b692ba8cf940776f724657a86af394a",
    "manifest-rule-1": "blake3:69938a5c466cc50578854442025dfa93394851e2a8db05b2c35fe63d991cacdb",
    "manifest-rule-2": "blake3:af017dd616510d981051f8293363e38ce918b873f9876ba065b3d5eb32a341f4",
    "environment": "blake3:14d9a1bb69866503515720593e00f14c536c529ab00faf7e07b7e0b7b46c5ffd",
    "manifest-object": "blake3:55d6274b3f34ed4aee5eed3af5bfc41b6da61359116fb782770b24166f8a0fd5",
}


def _fingerprint_partial(dataset: Any) -> str:
    return fingerprint(dataset, max_items=2)


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_object_fingerprints_are_the_recorded_ones(name: str) -> None:
    built = OBJECTS[name]()
    value = built if isinstance(built, str) else fingerprint(built)
    assert value == RECORDED[name]


def _write_tree(root: Path) -> Path:
    files = {
        "a.txt": b"alpha\n",
        "b/c.bin": _pattern(5000),
        "b/d/e.csv": b"x,y\n1,2\n",
        "empty.dat": b"",
        "z/été.txt": b"summer\n",
    }
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    (root / "empty-folder").mkdir()  # ignored: a folder digest covers files only
    return root


def test_file_and_folder_fingerprints_are_the_recorded_ones(tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(_pattern(4096))
    large = tmp_path / "large.bin"  # above the size where files are memory-mapped in windows
    large.write_bytes(_pattern(3 << 20))
    tree = _write_tree(tmp_path / "tree")
    for use_cache in (False, True, True):  # hashed, hashed into the cache, answered by it
        assert fingerprint(small, use_cache=use_cache) == RECORDED["file-small"]
        assert fingerprint(str(large), use_cache=use_cache) == RECORDED["file-large"]
        assert fingerprint(tree, use_cache=use_cache) == RECORDED["folder"]


# -- manifest digests -------------------------------------------------------------


def _record() -> dict[str, Any]:
    """A fixed record with every section the digest rules look at (and some they leave out)."""
    return {
        "schema_version": 1,
        "environment": {
            "python": {"version": "3.11.9", "implementation": "CPython", "executable": "/x/py"},
            "os": {"system": "Linux", "release": "6.1", "version": "#1 SMP"},
            "hardware": {"cpu_count": 8, "memory_bytes": 1 << 34, "cpu": "x86_64"},
            "packages": [
                {"name": "numpy", "version": "2.0.0", "source": "pypi"},
                {"name": "mine", "version": "0.1", "source": "editable", "url": "file:///home/a"},
            ],
            "container": {"in_container": False},
        },
        "code": {
            "commit": "0123456789abcdef0123456789abcdef01234567",
            "dirty": True,
            "diff_sha256": "ab" * 32,
            "root": "/home/a/project",
            "branch": "main",
            "remote": "https://example.com/a/project.git",
            "untracked": ["notes.txt"],
            "entrypoint": "train.py",
        },
        "seeds": {
            "global": 42,
            "rng_digests": {"python": "blake3:00"},
            "source": "seed_everything",
            "ranks": [],
        },
        "data": [
            {
                "name": "train",
                "kind": "directory",
                "fingerprint": "blake3:" + "1" * 64,
                "size_bytes": 10,
                "files": 2,
                "source": "/data/train",
                "partial": False,
                "dvc": None,
            },
            {"name": "labels", "kind": "ndarray", "fingerprint": "blake3:" + "2" * 64},
        ],
        "artifacts": {"repro/requirements.txt": "blake3:" + "3" * 64},
        "capture": {
            "track": "production",
            "created_at": "2026-01-01T00:00:00Z",
            "hostname": "box",
            "pid": 7,
            "duration_ms": 12.5,
            "errors": [],
        },
    }


def test_manifest_digests_are_the_recorded_ones() -> None:
    legacy = _record()  # no `digest_version`: rule 1
    current = {**_record(), "digest_version": 2}
    assert manifest_digest(legacy) == RECORDED["manifest-rule-1"]
    assert manifest_digest(current) == RECORDED["manifest-rule-2"]
    assert environment_digest(_record()["environment"]) == RECORDED["environment"]
    record = _record()
    built = Manifest(
        environment=record["environment"],
        code=record["code"],
        seeds=record["seeds"],
        data=record["data"],
        capture=record["capture"],
        track="production",
        artifacts=record["artifacts"],
    )
    assert built.digest == RECORDED["manifest-object"]
