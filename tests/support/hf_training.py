"""A tiny BERT and a local `datasets.Dataset` for real Trainer runs on CPU (nothing downloaded)."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

VOCAB = 32
LENGTH = 8


def tiny_bert() -> Any:
    """A 2-layer BERT with tiny sizes, built from a config: random initial weights."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=LENGTH,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def token_dataset(rows: int = 16, offset: int = 0) -> Any:
    """A local classification set: token ids, mask and label per row."""
    import datasets

    ids = [[(r * 7 + i * 3 + offset) % VOCAB for i in range(LENGTH)] for r in range(rows)]
    return datasets.Dataset.from_dict(
        {
            "input_ids": ids,
            "attention_mask": [[1] * LENGTH for _ in range(rows)],
            "labels": [(r + offset) % 2 for r in range(rows)],
        }
    )


def training_args(output_dir: str, report_to: list[str], **overrides: Any) -> Any:
    from transformers import TrainingArguments

    settings: dict[str, Any] = {
        "output_dir": output_dir,
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": report_to,
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 7,
        "data_seed": 11,
        "dataloader_num_workers": 0,
    }
    settings.update(overrides)
    return TrainingArguments(**settings)
