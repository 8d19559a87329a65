"""Fingerprints cover the whole logical content, never the memory layout, and say what they skipped."""

from __future__ import annotations

import errno
import os
import re
import sys
import threading
import time
import warnings
from pathlib import Path

import blake3
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
)

from repro_common import capture, fingerprint, inputs, track_data
from repro_common.fingerprints import files as fingerprint_files
from repro_common.fingerprints import fingerprint_details
from repro_common.fingerprints import objects as fingerprint_objects
from repro_common.fingerprints.files import MMAP_MIN
from repro_common.inputs import collect_data
from support.inputs_registry import clear_registry
from support.procs import run_python

HEX64 = r"^blake3:[0-9a-f]{64}$"


@pytest.fixture(autouse=True)
def _empty_registry():
    clear_registry(listeners=True)
    yield
    clear_registry(listeners=True)


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return root


# -- bytes and files ---------------------------------------------------------


def test_bytes_and_files_are_plain_blake3_of_their_content(tmp_path: Path) -> None:
    payload = os.urandom(3 << 20)  # above the mmap threshold
    expected = "blake3:" + blake3.blake3(payload).hexdigest()
    target = tmp_path / "blob.bin"
    target.write_bytes(payload)
    assert re.match(HEX64, expected)
    assert fingerprint(payload) == expected
    assert fingerprint(bytearray(payload)) == expected
    assert fingerprint(memoryview(payload)) == expected
    assert fingerprint(target) == expected
    assert fingerprint(str(target)) == expected
    details = fingerprint_details(target)
    assert (details.kind, details.size_bytes, details.files) == ("file", len(payload), 1)


def test_a_file_larger_than_several_mmap_windows_hashes_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fingerprint_files, "MMAP_WINDOW", mmap_granularity())
    payload = os.urandom(MMAP_MIN + 5 * mmap_granularity() + 123)
    target = tmp_path / "windows.bin"
    target.write_bytes(payload)
    assert fingerprint(target, use_cache=False) == "blake3:" + blake3.blake3(payload).hexdigest()
    changed = bytearray(payload)
    changed[-1] ^= 1
    target.write_bytes(changed)
    assert fingerprint(target, use_cache=False) == "blake3:" + blake3.blake3(changed).hexdigest()


def mmap_granularity() -> int:
    import mmap

    return mmap.ALLOCATIONGRANULARITY


def test_a_missing_path_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError) as info:
        fingerprint(missing)
    assert str(missing) in str(info.value)


# -- directories -------------------------------------------------------------


def test_directory_digest_covers_paths_sizes_and_content(tmp_path: Path) -> None:
    files = {"train/a.csv": b"1,2\n", "train/b.csv": b"3,4\n", "labels.txt": b"cat\n"}
    base = fingerprint(write_tree(tmp_path / "one", files))
    assert base == fingerprint(write_tree(tmp_path / "two", files)), "location must not matter"

    renamed = write_tree(tmp_path / "renamed", files)
    (renamed / "labels.txt").rename(renamed / "labels2.txt")
    moved = write_tree(tmp_path / "moved", files)
    (moved / "train" / "b.csv").rename(moved / "b.csv")
    edited = write_tree(tmp_path / "edited", {**files, "labels.txt": b"dog\n"})
    added = write_tree(tmp_path / "added", {**files, "extra": b""})
    prints = {fingerprint(p) for p in (renamed, moved, edited, added)}
    assert base not in prints and len(prints) == 4


def test_directory_details_list_every_file(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "d", {"b/x.bin": b"xx", "a.bin": b"a", "b/y/z.bin": b"zzz"})
    (root / "empty").mkdir()
    details = fingerprint_details(root)
    assert details.kind == "directory"
    assert (details.files, details.size_bytes, details.partial) == (3, 6, False)
    assert [e.path for e in details.entries] == ["a.bin", "b/x.bin", "b/y/z.bin"]
    assert details.listing()[0] == {
        "path": "a.bin",
        "size_bytes": 1,
        "digest": "blake3:" + blake3.blake3(b"a").hexdigest(),
    }


def test_symlinked_files_and_folders_are_followed(tmp_path: Path) -> None:
    real = write_tree(tmp_path / "real", {"data/x.bin": b"payload", "y.bin": b"y"})
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "y.bin").symlink_to(real / "y.bin")
    (linked / "data").symlink_to(real / "data", target_is_directory=True)
    assert fingerprint(linked) == fingerprint(real)


def test_a_symlink_loop_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "looped", {"sub/file.bin": b"1"})
    loop = root / "sub" / "back"
    loop.symlink_to(root, target_is_directory=True)
    started = time.monotonic()
    with pytest.raises(OSError) as info:
        fingerprint(root)
    assert time.monotonic() - started < 10
    assert info.value.errno == errno.ELOOP
    assert str(loop) in str(info.value) and "loop" in str(info.value)

    selfie = tmp_path / "selfie"
    selfie.symlink_to(selfie)
    with pytest.raises(OSError) as info:
        fingerprint(selfie)
    assert info.value.errno == errno.ELOOP and str(selfie) in str(info.value)


def test_a_broken_link_or_a_fifo_is_an_error_naming_it(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "d", {"ok.bin": b"1"})
    (root / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(OSError, match="dangling"):
        fingerprint(root)
    (root / "dangling").unlink()
    fifo = root / "pipe"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(OSError, match="not a regular file") as info:
        fingerprint(root)
    assert str(fifo) in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "d", {"secret.bin": b"1"})
    (root / "secret.bin").chmod(0)
    with pytest.raises(PermissionError, match="secret.bin"):
        fingerprint(root, use_cache=False)


def test_a_read_failure_is_an_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(tmp_path / "d", {"ok.bin": b"1", "locked.bin": b"2"})
    real_open = open

    def guarded_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fsdecode(path).endswith("locked.bin"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(fingerprint_files, "open", guarded_open, raising=False)
    with pytest.raises(PermissionError) as info:
        fingerprint(root, use_cache=False)
    assert str(root / "locked.bin") in str(info.value)


def test_progress_reports_bytes_against_the_total(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "d", {f"f{i}.bin": os.urandom(1000 * (i + 1)) for i in range(10)})
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(advance: int, total: int) -> None:
        with lock:
            seen.append((advance, total))

    fingerprint_details(root, use_cache=False, progress=progress)
    assert {total for _, total in seen} == {55_000}
    assert sum(advance for advance, _ in seen) == 55_000


# -- arrays and tensors ------------------------------------------------------


def test_the_same_array_gives_the_same_fingerprint_whatever_its_layout() -> None:
    base = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    wide = np.zeros((2, 6, 8))
    wide[:, ::2, ::2] = base
    layouts = [
        base,
        np.asfortranarray(base),
        base.copy(),
        wide[:, ::2, ::2],  # strided view
        base.astype(">f8"),  # big-endian
        np.flip(np.flip(base, 1).copy(), 1),  # negative strides
        torch.from_numpy(base),
        torch.from_numpy(np.asfortranarray(base)),
        torch.from_numpy(base.copy()).permute(2, 1, 0).contiguous().permute(2, 1, 0),
    ]
    assert len({fingerprint(x) for x in layouts}) == 1
    assert fingerprint_details(base).kind == "ndarray"
    assert fingerprint_details(layouts[-1]).kind == "tensor"


def test_large_non_contiguous_arrays_are_hashed_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint_objects, "ARRAY_CHUNK", 4096)
    arr = np.random.default_rng(0).random((300, 70))
    assert fingerprint(np.asfortranarray(arr)) == fingerprint(arr)
    assert fingerprint(arr[::2, ::3]) == fingerprint(arr[::2, ::3].copy())


@pytest.mark.parametrize("position", [0, 499_999, 999_999])
def test_changing_any_single_element_changes_the_fingerprint(position: int) -> None:
    arr = np.zeros(1_000_000, dtype=np.float32)
    before = fingerprint(arr)
    arr[position] = np.float32(1e-30)
    assert fingerprint(arr) != before
    tensor = torch.zeros(1_000_000)
    tensor_before = fingerprint(tensor)
    tensor[position] = 1e-30
    assert fingerprint(tensor) != tensor_before


def test_dtype_and_shape_are_part_of_the_content() -> None:
    arr = np.arange(12, dtype=np.int32)
    prints = {
        fingerprint(arr),
        fingerprint(arr.reshape(3, 4)),
        fingerprint(arr.reshape(4, 3)),
        fingerprint(arr.view(np.uint32)),
        fingerprint(arr.view(np.float32)),
    }
    assert len(prints) == 5


def test_structured_arrays_ignore_padding_bytes() -> None:
    dtype = np.dtype([("a", "u1"), ("b", "<f8")], align=True)  # 7 bytes of padding
    first = np.zeros(3, dtype=dtype)
    raw = np.frombuffer(b"\xff" * first.nbytes, dtype=np.uint8).copy()
    second = raw.view(dtype)
    second["a"], second["b"] = first["a"], first["b"]
    assert first.tobytes() != second.tobytes()
    assert fingerprint(first) == fingerprint(second)
    second["b"][2] = 1.0
    assert fingerprint(first) != fingerprint(second)


def test_object_arrays_and_unknown_types_get_a_type_error_naming_the_supported_kinds() -> None:
    with pytest.raises(TypeError, match="object.*numpy arrays.*pandas"):
        fingerprint(np.array([1, "a"], dtype=object))
    for value in (3.5, [1, 2], {"a": 1}, object()):
        with pytest.raises(TypeError, match="supported kinds are .*torch tensors"):
            fingerprint(value)


def test_tensor_dtypes_without_a_numpy_twin_still_fingerprint() -> None:
    values = torch.linspace(0, 1, 50)
    for dtype in (torch.bfloat16, torch.float16, torch.float8_e4m3fn, torch.uint16, torch.bool):
        tensor = values.to(dtype)
        changed = tensor.clone()
        changed[-1] = 0
        assert fingerprint(tensor) == fingerprint(tensor.clone().t().contiguous().t())
        assert fingerprint(tensor) != fingerprint(changed), dtype
    assert fingerprint(values.to(torch.bfloat16)) != fingerprint(values.to(torch.float16))


def test_requires_grad_conjugate_and_sparse_tensors() -> None:
    weights = torch.arange(6.0, requires_grad=True)
    assert fingerprint(weights) == fingerprint(torch.arange(6.0))
    z = torch.tensor([1 + 2j, 3 - 1j])
    assert fingerprint(z.conj()) == fingerprint(z.conj().resolve_conj())
    with pytest.raises(TypeError, match="dense"):
        fingerprint(torch.eye(3).to_sparse())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_tensor_matches_its_cpu_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fingerprint_objects, "ARRAY_CHUNK", 4096)
    cpu = torch.randn(257, 33)
    gpu = cpu.cuda()
    assert fingerprint(gpu) == fingerprint(cpu)
    assert fingerprint(gpu.t()) == fingerprint(cpu.t())
    gpu[-1, -1] += 1
    assert fingerprint(gpu) != fingerprint(cpu)


# -- pandas ------------------------------------------------------------------


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31, 42, 27],
            "score": [0.5, np.nan, 1.25],
            "city": ["Oslo", "Lima", None],
            "tier": pd.Categorical(["a", "b", "a"]),
            "visits": pd.array([1, None, 3], dtype="Int64"),
            "seen": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]).tz_localize("UTC"),
        },
        index=pd.Index([10, 20, 30], name="id"),
    )


def test_a_dataframe_is_fingerprinted_by_names_dtypes_index_and_values() -> None:
    frame = sample_frame()
    base = fingerprint(frame)
    rebuilt = pd.concat(
        [frame[["age", "score"]], frame[["city", "tier", "visits", "seen"]]], axis=1
    )
    assert fingerprint(rebuilt) == base
    assert fingerprint(frame.copy()) == base
    variants = [
        frame.rename(columns={"age": "years"}),
        frame.astype({"age": "int32"}),
        frame.set_axis([11, 20, 30], axis=0),
        frame.rename_axis("key"),
        frame.iloc[::-1],
        frame.assign(city=["Oslo", "Lima", "Rome"]),
        frame.assign(visits=pd.array([1, 2, 3], dtype="Int64")),
        frame[["score", "age", "city", "tier", "visits", "seen"]],
    ]
    prints = {fingerprint(v) for v in variants}
    assert base not in prints and len(prints) == len(variants)
    assert fingerprint_details(frame).kind == "dataframe"


def test_the_last_row_of_a_long_frame_counts() -> None:
    frame = pd.DataFrame({"x": np.zeros(200_000), "label": ["a"] * 200_000})
    before = fingerprint(frame)
    frame.loc[199_999, "label"] = "b"
    assert fingerprint(frame) != before


def test_a_series_includes_its_name_and_index() -> None:
    series = pd.Series([1.0, 2.0], name="loss")
    assert fingerprint(series) == fingerprint(pd.Series(np.array([1.0, 2.0]), name="loss"))
    assert fingerprint(series) != fingerprint(series.rename("acc"))
    assert fingerprint(series) != fingerprint(series.set_axis([5, 6]))
    assert fingerprint_details(series).kind == "series"


def test_unsupported_cells_get_a_type_error() -> None:
    with pytest.raises(TypeError, match="object column"):
        fingerprint(pd.DataFrame({"cells": [[1, 2], [3]]}))


# -- torch datasets ----------------------------------------------------------


def features(n: int = 20) -> TensorDataset:
    return TensorDataset(torch.arange(n * 3.0).reshape(n, 3), torch.arange(n) % 2)


def test_torch_datasets_follow_their_tensors_indices_and_parts() -> None:
    base = features()
    assert fingerprint(base) == fingerprint(features())
    changed = features()
    changed.tensors[1][-1] = 7
    assert fingerprint(changed) != fingerprint(base)
    subset = Subset(base, [0, 2, 4])
    assert fingerprint(subset) == fingerprint(Subset(features(), [0, 2, 4]))
    assert fingerprint(subset) != fingerprint(Subset(base, [0, 2, 5]))
    concat = ConcatDataset([base, subset])
    assert fingerprint(concat) != fingerprint(ConcatDataset([subset, base]))
    kinds = [fingerprint_details(x).kind for x in (base, subset, concat)]
    assert kinds == ["tensor_dataset", "subset", "concat_dataset"]


def test_a_dataloader_adds_its_sampler_and_batch_settings() -> None:
    base = DataLoader(features(), batch_size=4)
    assert fingerprint(base) == fingerprint(DataLoader(features(), batch_size=4, num_workers=0))
    variants = [
        DataLoader(features(), batch_size=8),
        DataLoader(features(), batch_size=4, shuffle=True),
        DataLoader(features(), batch_size=4, drop_last=True),
        DataLoader(
            features(), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(1)
        ),
        DataLoader(
            features(), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(2)
        ),
        DataLoader(features(21), batch_size=4),
    ]
    prints = {fingerprint(v) for v in variants}
    assert fingerprint(base) not in prints and len(prints) == len(variants)
    assert fingerprint_details(base).kind == "dataloader"


class Squares(Dataset):
    """A map-style dataset with mixed items: tensors, ints, strings, dicts."""

    def __init__(self, n: int, bump_last: bool = False) -> None:
        self.n, self.bump_last = n, bump_last
        self.reads = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):  # type: ignore[no-untyped-def]
        self.reads += 1
        value = index * index + (1 if self.bump_last and index == self.n - 1 else 0)
        return torch.tensor([value]), index % 3, {"name": f"item{index}", "weight": 0.5}


def test_other_datasets_are_fingerprinted_item_by_item() -> None:
    full = fingerprint_details(Squares(50))
    assert (full.kind, full.partial, full.items_hashed, full.items_total) == (
        "dataset",
        False,
        50,
        50,
    )
    assert full.fingerprint == fingerprint(Squares(50))
    assert full.fingerprint != fingerprint(Squares(50, bump_last=True))


def test_max_items_marks_the_result_partial_never_silently() -> None:
    dataset = Squares(1000)
    result = fingerprint_details(dataset, max_items=10)
    assert (result.partial, result.items_hashed, result.items_total) == (True, 10, 1000)
    assert dataset.reads == 2 * 10  # items 0..9, read twice (augmentation check), no more
    assert result.fingerprint != fingerprint(Squares(1000))
    assert not fingerprint_details(Squares(10), max_items=10).partial
    loader = fingerprint_details(DataLoader(Squares(1000), batch_size=5), max_items=10)
    assert loader.partial and loader.kind == "dataloader"
    item = track_data(Squares(1000), "sample", max_items=10)
    assert item["partial"] is True


def test_the_fingerprint_protocol_takes_precedence() -> None:
    class Versioned(Dataset):
        def __init__(self, version: str) -> None:
            self.version = version

        def __len__(self) -> int:
            raise AssertionError("the protocol must avoid reading items")

        def __getitem__(self, index: int) -> int:
            raise AssertionError("the protocol must avoid reading items")

        def __fingerprint__(self) -> str:
            return f"warehouse-snapshot-{self.version}"

    assert fingerprint(Versioned("7")) == fingerprint(Versioned("7"))
    assert fingerprint(Versioned("7")) != fingerprint(Versioned("8"))
    assert fingerprint_details(Versioned("7")).kind == "custom"
    assert fingerprint(DataLoader(Versioned("7"), batch_size=2)) != fingerprint(
        DataLoader(Versioned("8"), batch_size=2)
    )


def test_iterable_datasets_are_refused_with_a_way_out() -> None:
    class Stream(IterableDataset):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield from range(3)

    with pytest.raises(TypeError, match="__fingerprint__"):
        fingerprint(Stream())

    class Lookup:
        """Has __len__ and __getitem__, but is keyed by name, not by position."""

        def __len__(self) -> int:
            return 1

        def __getitem__(self, key: str) -> int:
            return {"only": 1}[key]

    with pytest.raises(TypeError, match="indexed 0..len-1"):
        fingerprint(Lookup())


# -- track_data and the registry ---------------------------------------------


def test_track_data_registers_an_item_the_manifest_carries(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "images", {"a.png": b"a", "b.png": b"bb"})
    item = track_data(root, "images")
    assert item == {
        "name": "images",
        "kind": "directory",
        "fingerprint": fingerprint(root),
        "size_bytes": 3,
        "files": 2,
        "source": str(root),
        "partial": False,
        "dvc": None,
    }
    track_data(np.arange(5), "labels", source="labels.npy")
    manifest = capture()
    manifest.validate()
    assert [d["name"] for d in manifest.data] == ["images", "labels"]
    assert manifest.data[1]["source"] == "labels.npy"
    assert inputs.tracked_details("images").listing()[1]["path"] == "b.png"

    before = manifest.digest
    track_data(np.arange(6), "labels")
    assert capture().digest != before, "new data, new manifest digest"


def test_tracking_a_name_again_replaces_it() -> None:
    track_data(b"v1", "x")
    track_data(b"v2", "x")
    assert [d["fingerprint"] for d in collect_data([])] == [fingerprint(b"v2")]


def test_listeners_hear_each_item_and_their_failures_are_one_warning() -> None:
    heard: list[dict] = []

    def broken(item: dict) -> None:
        raise RuntimeError("tracker offline")

    inputs.add_listener(broken)
    inputs.add_listener(heard.append)
    with pytest.warns(RuntimeWarning, match="tracker offline") as caught:
        item = track_data(b"abc", "tiny")
    assert len([w for w in caught if "tracker offline" in str(w.message)]) == 1
    assert heard == [item]
    inputs.remove_listener(broken)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        track_data(b"abcd", "tiny")
    assert len(heard) == 2


def test_the_registry_is_safe_from_many_threads() -> None:
    def work(n: int) -> None:
        for i in range(20):
            track_data(f"{n}-{i}".encode(), f"t{n}-{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(collect_data([])) == 160


def test_importing_and_fingerprinting_bytes_loads_no_heavy_library() -> None:
    out = run_python(
        """
        import sys
        import repro_common
        from repro_common import fingerprint, track_data
        track_data(b"abc", "bytes")
        print(fingerprint(b"abc"))
        print(sorted(m for m in ("numpy", "torch", "pandas") if m in sys.modules))
        """
    ).stdout.splitlines()
    assert out[0] == "blake3:" + blake3.blake3(b"abc").hexdigest()
    assert out[1] == "[]"


def test_results_are_stable_across_processes() -> None:
    code = """
        import numpy as np, pandas as pd
        from repro_common import fingerprint
        print(fingerprint(np.arange(10.0)), fingerprint(pd.DataFrame({"a": ["x", "y"]})),
              fingerprint(pd.Series([1, None], dtype="Int64")))
        """
    first = run_python(code, env={**os.environ, "PYTHONHASHSEED": "1"}).stdout
    second = run_python(code, env={**os.environ, "PYTHONHASHSEED": "2"}).stdout
    assert first == second and first.count("blake3:") == 3
    assert sys.modules.get("numpy") is not None
