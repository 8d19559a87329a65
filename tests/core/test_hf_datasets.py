"""Hugging Face `datasets` inputs: full-content fingerprints from the Arrow data, built locally."""

from __future__ import annotations

import pytest

from repro_common import capture, fingerprint, track_data
from repro_common.inputs import describe_input

datasets = pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def rows(n: int = 12) -> dict[str, list]:
    return {
        "id": list(range(n)),
        "score": [i / 3 if i % 5 else None for i in range(n)],
        "text": [f"row {i}" * (i % 3) if i % 4 else None for i in range(n)],
        "tokens": [[i, i + 1][: i % 3] if i % 6 else None for i in range(n)],
        "meta": [{"a": i, "b": f"m{i}"} for i in range(n)],
        "flag": [i % 2 == 0 for i in range(n)],
    }


def rechunked(dataset, size: int):
    """The same rows, cut into record batches of `size` rows: another layout, same content."""
    table = dataset.data.table
    return datasets.Dataset(pa.Table.from_batches(table.to_batches(max_chunksize=size)))


def test_the_fingerprint_ignores_chunking_and_slice_offsets():
    whole = datasets.Dataset.from_dict(rows())
    assert len(rechunked(whole, 5).data.table.column("id").chunks) == 3
    expected = fingerprint(whole)
    assert fingerprint(rechunked(whole, 1)) == expected
    assert fingerprint(rechunked(whole, 5)) == expected
    # A slice of the middle starts at a non-zero offset inside its buffers.
    middle = datasets.Dataset(whole.data.table.slice(3, 6))
    assert fingerprint(middle) == fingerprint(datasets.Dataset.from_dict(whole[3:9]))


def test_every_value_counts_the_last_row_and_a_null_included():
    base = rows()
    expected = fingerprint(datasets.Dataset.from_dict(base))
    changed = dict(base, id=base["id"][:-1] + [999])
    assert fingerprint(datasets.Dataset.from_dict(changed)) != expected
    null_for_zero = dict(base, score=[0.0 if v is None else v for v in base["score"]])
    assert fingerprint(datasets.Dataset.from_dict(null_for_zero)) != expected
    text = dict(base, text=base["text"][:-1] + ["other"])
    assert fingerprint(datasets.Dataset.from_dict(text)) != expected
    # Where the null is matters, not only how many values are left.
    first = datasets.Dataset.from_dict({"x": [None, 1, 1]})
    last = datasets.Dataset.from_dict({"x": [1, 1, None]})
    assert fingerprint(first) != fingerprint(last)
    # Moving a character between two strings keeps the bytes but changes the values.
    a = datasets.Dataset.from_dict({"t": ["ab", "c"]})
    b = datasets.Dataset.from_dict({"t": ["a", "bc"]})
    assert fingerprint(a) != fingerprint(b)


def test_select_and_shuffle_are_honoured_in_the_order_they_yield_rows():
    whole = datasets.Dataset.from_dict(rows())
    picked = whole.select([7, 2, 9])
    assert picked._indices is not None  # an indices mapping, not a copy
    assert fingerprint(picked) == fingerprint(datasets.Dataset.from_dict(picked[:]))
    assert fingerprint(picked) != fingerprint(whole.select([2, 7, 9]))
    shuffled = whole.shuffle(seed=3)
    assert fingerprint(shuffled) != fingerprint(whole)
    assert fingerprint(shuffled) == fingerprint(shuffled.flatten_indices())
    assert fingerprint(whole.shuffle(seed=3)) == fingerprint(shuffled)


def test_not_the_transform_chain_the_same_rows_by_two_routes_agree():
    whole = datasets.Dataset.from_dict(rows())
    mapped = whole.map(lambda row: {"id": row["id"] + 1}).map(lambda row: {"id": row["id"] - 1})
    assert mapped._fingerprint != whole._fingerprint
    assert fingerprint(mapped) == fingerprint(whole)


def test_large_offsets_are_layout_not_content():
    plain = pa.table(
        {"t": pa.array(["x", "yz", "x", None]), "l": pa.array([[1], [2, 3], [], None])}
    )
    large = pa.table(
        {
            "t": pa.array(["x", "yz", "x", None], type=pa.large_string()),
            "l": pa.array([[1], [2, 3], [], None], type=pa.large_list(pa.int64())),
        }
    )
    assert datasets.Dataset(large).data.table.schema.field("t").type == pa.large_string()
    assert fingerprint(datasets.Dataset(plain)) == fingerprint(datasets.Dataset(large))


def test_format_and_labels_are_part_of_what_the_training_sees():
    whole = datasets.Dataset.from_dict(rows())
    assert fingerprint(whole.with_format("torch")) != fingerprint(whole)
    assert fingerprint(whole.with_format("torch", columns=["id"])) != fingerprint(
        whole.with_format("torch")
    )
    features = datasets.Features({"label": datasets.ClassLabel(names=["cat", "dog"])})
    swapped = datasets.Features({"label": datasets.ClassLabel(names=["dog", "cat"])})
    a = datasets.Dataset.from_dict({"label": [0, 1]}, features=features)
    b = datasets.Dataset.from_dict({"label": [0, 1]}, features=swapped)
    assert fingerprint(a) != fingerprint(b)


def test_a_dataset_dict_and_a_loader_over_a_dataset():
    torch = pytest.importorskip("torch")
    train = datasets.Dataset.from_dict(rows())
    test = datasets.Dataset.from_dict(rows(4))
    both = datasets.DatasetDict(train=train, test=test)
    item, _ = describe_input(both, "corpus")
    assert item["kind"] == "hf_dataset_dict" and item["rows"] == {"train": 12, "test": 4}
    other = datasets.DatasetDict(train=train, test=datasets.Dataset.from_dict(rows(5)))
    assert fingerprint(other) != item["fingerprint"]
    loader = torch.utils.data.DataLoader(train.with_format("torch"), batch_size=4)
    assert fingerprint(loader) == fingerprint(
        torch.utils.data.DataLoader(rechunked(train, 5).with_format("torch"), batch_size=4)
    )
    assert fingerprint(loader) != fingerprint(
        torch.utils.data.DataLoader(train.with_format("torch"), batch_size=2)
    )


def test_hub_origin_is_the_recorded_commit_never_a_branch():
    pinned = datasets.DatasetInfo(
        download_checksums={f"hf://datasets/org/corpus@{SHA}/data/train.parquet": {}}
    )
    item, _ = describe_input(datasets.Dataset.from_dict(rows(), info=pinned), "train")
    assert (item["hub_repo"], item["hub_commit"]) == ("org/corpus", SHA)
    assert item["basis"] == "hf-arrow/1"
    branch = datasets.DatasetInfo(
        download_checksums={"hf://datasets/org/corpus@main/data/train.parquet": {}}
    )
    item, _ = describe_input(datasets.Dataset.from_dict(rows(), info=branch), "train")
    assert item["hub_repo"] == "org/corpus" and item["hub_commit"] is None
    assert "main" not in str(item)


def test_the_hub_repo_from_the_cache_folder_when_no_url_is_recorded(tmp_path):
    saved = tmp_path / "org___corpus" / "default" / "0.0.0" / "abc"
    datasets.Dataset.from_dict(rows()).save_to_disk(str(saved))
    (arrow,) = saved.glob("*.arrow")
    loaded = datasets.Dataset.from_file(str(arrow))
    item, _ = describe_input(loaded, "train")
    assert item["hub_repo"] == "org/corpus" and item["hub_commit"] is None
    assert item["fingerprint"] == fingerprint(datasets.Dataset.from_dict(rows()))


def test_tracked_dataset_is_in_a_valid_record():
    dataset = datasets.Dataset.from_dict(rows())
    entry = track_data(dataset, "train")
    assert entry["kind"] == "hf_dataset" and entry["rows"] == 12
    assert entry["size_bytes"] > 0
    manifest = capture()
    manifest.validate()
    assert [d["fingerprint"] for d in manifest.data] == [fingerprint(dataset)]


def test_a_streaming_dataset_is_refused_with_the_reason():
    stream = datasets.Dataset.from_dict(rows()).to_iterable_dataset()
    with pytest.raises(TypeError, match="streaming"):
        fingerprint(stream)


def test_the_encoding_is_pinned_so_recorded_fingerprints_stay_valid():
    """hf_dataset/1: a change to the encoding changes what users recorded; bump the tag then."""
    dataset = datasets.Dataset.from_dict(
        {
            "id": [1, 2, None],
            "text": ["a", "bc", None],
            "tokens": [[1], [2, 3], None],
            "meta": [{"a": 1}, {"a": 2}, {"a": 3}],
        }
    )
    assert fingerprint(dataset) == (
        "blake3:74110d6f28666da2fdec988cb0e8ed6c803a1724cd59e8d4f3aca8249b7535ce"
    )
    assert fingerprint(datasets.DatasetDict(train=dataset)) == (
        "blake3:f5dd71db8f4722736dc9949c1f648b44f622c4113618472e134730e49f78045c"
    )
