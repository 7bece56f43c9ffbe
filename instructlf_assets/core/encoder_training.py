"""Fine-tuning the compatibility model Φ: a dual encoder where score(c, x) = Φ(c)ᵀΦ(x).

Training pairs are (document, a property proposed for it); every other property in the batch is a negative
(MultipleNegativesRankingLoss), which is the paper's in-batch-negative objective. On CPU, time goes mostly to
long documents and to AdamW updating the 11.7M-parameter token embedding, so both are options here.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .embedding import encode

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_train_pairs: int = 640
    max_seq_length: int = 128
    freeze_embeddings: bool = True
    freeze_layers: int = 0
    seed: int = 0


@dataclass
class TrainingReport:
    n_pairs: int
    n_steps: int
    seconds: float
    final_loss: float | None
    options: dict[str, object] = field(default_factory=dict)


def training_pairs(documents: pd.DataFrame, proposals: pd.DataFrame, vocabulary: pd.DataFrame) -> pd.DataFrame:
    """(anchor=document text, positive=property text) for every kept proposal of a training document."""
    texts = vocabulary.set_index("property_id")["text"]
    train_docs = documents.loc[documents["split"] == "train", ["doc_id", "text"]]
    pairs = proposals.dropna(subset=["property_id"]).merge(train_docs, on="doc_id")
    pairs = pairs.drop_duplicates(["doc_id", "property_id"])
    return pd.DataFrame({"anchor": pairs["text"].to_numpy(), "positive": pairs["property_id"].map(texts).to_numpy()})


def fine_tune(model: SentenceTransformer, pairs: pd.DataFrame, options: TrainingOptions) -> TrainingReport:
    """Train `model` in place on (anchor, positive) pairs; a sample of `max_train_pairs` bounds the time."""
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )
    from transformers import PrinterCallback

    from datasets import Dataset

    if len(pairs) > options.max_train_pairs:
        pairs = pairs.sample(options.max_train_pairs, random_state=options.seed)
    inference_length = model.max_seq_length
    model.max_seq_length = options.max_seq_length
    _freeze(model, options.freeze_embeddings, options.freeze_layers)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="instructlf-train-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch,
            num_train_epochs=options.epochs,
            per_device_train_batch_size=options.batch_size,
            learning_rate=options.learning_rate,
            warmup_steps=0.1,
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            save_strategy="no",
            report_to="none",
            logging_steps=1,
            seed=options.seed,
            use_cpu=str(model.device) == "cpu",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_pandas(pairs.reset_index(drop=True)),
            loss=MultipleNegativesRankingLoss(model),
        )
        trainer.remove_callback(PrinterCallback)  # losses go to the training report, not to the user's terminal
        os.environ.setdefault("WANDB_DISABLED", "true")
        result = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    # The training length is a speed knob; scoring reads documents at the model's full length.
    model.max_seq_length = inference_length
    return TrainingReport(
        n_pairs=len(pairs),
        n_steps=int(result.global_step),
        seconds=time.perf_counter() - started,
        final_loss=float(losses[-1]) if losses else None,
        options=options.__dict__.copy(),
    )


def _freeze(model: SentenceTransformer, embeddings: bool, lower_layers: int) -> None:
    """Half of MiniLM's parameters are the word-piece table, and backpropagation stops at the lowest trainable
    layer: freezing the table halves optimizer work, freezing lower layers also shortens the backward pass."""
    frozen = [f"encoder.layer.{i}." for i in range(lower_layers)]
    for name, parameter in model.named_parameters():
        if (embeddings and ".embeddings." in name) or any(prefix in name for prefix in frozen):
            parameter.requires_grad_(False)


def recall_at_k(
    model: SentenceTransformer,
    documents: pd.DataFrame,
    proposals: pd.DataFrame,
    vocabulary: pd.DataFrame,
    k: int = 5,
    batch_size: int = 64,
) -> float:
    """Mean share of a held-out document's own (mapped) properties among its top-k scored vocabulary entries."""
    truth = proposals.dropna(subset=["property_id"]).groupby("doc_id")["property_id"].agg(set)
    held_out = documents[documents["doc_id"].isin(truth.index)]
    if held_out.empty or vocabulary.empty:
        return float("nan")
    doc_vectors = encode(model, held_out["text"].tolist(), batch_size)
    prop_vectors = encode(model, vocabulary["text"].tolist(), batch_size)
    scores = doc_vectors @ prop_vectors.T
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    ids = vocabulary["property_id"].to_numpy()
    recalls = [
        len(truth[doc_id] & set(ids[row])) / min(k, len(truth[doc_id]))
        for doc_id, row in zip(held_out["doc_id"], top, strict=True)
    ]
    return float(np.mean(recalls))


def save_model(model: SentenceTransformer, directory: Path) -> None:
    model.save(str(directory))
