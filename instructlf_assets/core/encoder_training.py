"""Fine-tuning the compatibility model Φ: a dual encoder where score(c, x) = Φ(c)ᵀΦ(x).

Training pairs are (document, a property proposed for it); every other property in the batch is a negative
(MultipleNegativesRankingLoss), which is the paper's in-batch-negative objective. On CPU, time goes mostly to
long documents and to AdamW updating the 11.7M-parameter token embedding, so both are options here.

Two strategies:

- ``full``: fine-tune the transformer (optionally with its lower layers frozen and a shorter training length).
- ``projection_head``: keep the transformer frozen and learn one linear map P on its (unit) embeddings, so
  Φ(t) = normalise(P · MiniLM(t)). Every text is encoded once, without gradients, and the head trains on those
  vectors in well under a second; the cost is the encoding, not backpropagation through six layers per step.
  The head is saved as a ``Dense`` + ``Normalize`` module pair, so the result is still a plain
  sentence-transformers directory that scoring loads like any other.
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

from .embedding import Embedder, encode
from .representations import unit_rows

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer


STRATEGIES = ("full", "projection_head")
# MultipleNegativesRankingLoss's default: cosine similarities times 20 before the softmax.
_SIMILARITY_SCALE = 20.0


@dataclass(frozen=True)
class TrainingOptions:
    strategy: str = "full"
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_train_pairs: int = 640
    max_seq_length: int = 128
    freeze_embeddings: bool = True
    freeze_layers: int = 3
    seed: int = 0
    head_epochs: int = 20
    head_learning_rate: float = 1e-3
    head_max_train_pairs: int = 50_000


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


def fine_tune(
    model: SentenceTransformer, pairs: pd.DataFrame, options: TrainingOptions, embed: Embedder | None = None
) -> TrainingReport:
    """Train `model` in place on (anchor, positive) pairs; a sample of `max_train_pairs` bounds the time.

    `embed`: the base model's (cached) embeddings, which the projection head trains on instead of encoding again.
    """
    if options.strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {options.strategy!r}")
    if options.strategy == "projection_head":
        return train_projection_head(model, pairs, options, embed)
    return _fine_tune_transformer(model, pairs, options)


def _sample_pairs(pairs: pd.DataFrame, options: TrainingOptions, limit: int | None = None) -> pd.DataFrame:
    limit = options.max_train_pairs if limit is None else limit
    if len(pairs) > limit:
        return pairs.sample(limit, random_state=options.seed)
    return pairs


def _fine_tune_transformer(model: SentenceTransformer, pairs: pd.DataFrame, options: TrainingOptions) -> TrainingReport:
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )
    from transformers import PrinterCallback

    from datasets import Dataset

    pairs = _sample_pairs(pairs, options)
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


def train_projection_head(
    model: SentenceTransformer, pairs: pd.DataFrame, options: TrainingOptions, embed: Embedder | None = None
) -> TrainingReport:
    """Learn P (initialised to the identity) with in-batch negatives on frozen embeddings; append it to `model`.

    Starting from the identity means zero epochs is the base model, and a few epochs move it only as far as
    the pairs justify. Other pairs of a batch that share the positive property are masked out rather than
    counted as negatives (what the full strategy's NO_DUPLICATES sampler achieves by construction).
    """
    import torch
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    pairs = _sample_pairs(pairs, options, options.head_max_train_pairs).reset_index(drop=True)
    started = time.perf_counter()
    texts = pd.unique(pd.concat([pairs["anchor"], pairs["positive"]], ignore_index=True))
    vectors = torch.from_numpy(embed(list(texts)) if embed else encode(model, list(texts), batch_size=64))
    row = {text: i for i, text in enumerate(texts)}
    anchors = vectors[[row[t] for t in pairs["anchor"]]]
    positives = vectors[[row[t] for t in pairs["positive"]]]
    positive_ids = torch.as_tensor(pd.factorize(pairs["positive"])[0])
    dim = vectors.shape[1]
    head = torch.nn.Linear(dim, dim)
    generator = torch.Generator().manual_seed(options.seed)
    with torch.no_grad():
        head.weight.copy_(torch.eye(dim))
        head.bias.zero_()
    optimizer = torch.optim.Adam(head.parameters(), lr=options.head_learning_rate)
    losses: list[float] = []
    n_steps = 0
    for _ in range(options.head_epochs):
        order = torch.randperm(len(pairs), generator=generator)
        for batch in order.split(options.batch_size):
            if len(batch) < 2:
                continue
            loss = _in_batch_loss(head, anchors[batch], positives[batch], positive_ids[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            n_steps += 1
    device = model.device
    dense = Dense(dim, dim, bias=True, activation_function=torch.nn.Identity(),
                  init_weight=head.weight.detach().clone(), init_bias=head.bias.detach().clone())  # fmt: skip
    model.append(dense.to(device))
    model.append(Normalize())
    return TrainingReport(
        n_pairs=len(pairs),
        n_steps=n_steps,
        seconds=time.perf_counter() - started,
        final_loss=losses[-1] if losses else None,
        options=options.__dict__.copy(),
    )


def _in_batch_loss(
    head: torch.nn.Linear, anchors: torch.Tensor, positives: torch.Tensor, positive_ids: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of each anchor against every positive of the batch, same-property columns masked."""
    import torch
    import torch.nn.functional as F

    a = F.normalize(head(anchors), dim=1)
    p = F.normalize(head(positives), dim=1)
    logits = _SIMILARITY_SCALE * a @ p.T
    duplicate = (positive_ids[:, None] == positive_ids[None, :]) & ~torch.eye(len(a), dtype=torch.bool)
    logits = logits.masked_fill(duplicate, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(a)))


def _freeze(model: SentenceTransformer, embeddings: bool, lower_layers: int) -> None:
    """Half of MiniLM's parameters are the word-piece table, and backpropagation stops at the lowest trainable
    layer: freezing the table halves optimizer work, freezing lower layers also shortens the backward pass."""
    frozen = [f"encoder.layer.{i}." for i in range(lower_layers)]
    for name, parameter in model.named_parameters():
        if (embeddings and ".embeddings." in name) or any(prefix in name for prefix in frozen):
            parameter.requires_grad_(False)


def recall_at_k(
    embed: Embedder, documents: pd.DataFrame, proposals: pd.DataFrame, vocabulary: pd.DataFrame, k: int = 5
) -> float:
    """Mean share of a held-out document's own (mapped) properties among its top-k scored vocabulary entries."""
    truth = proposals.dropna(subset=["property_id"]).groupby("doc_id")["property_id"].agg(set)
    held_out = documents[documents["doc_id"].isin(truth.index)]
    if held_out.empty or vocabulary.empty:
        return float("nan")
    doc_vectors = embed(held_out["text"].tolist())
    prop_vectors = embed(vocabulary["text"].tolist())
    scores = doc_vectors @ prop_vectors.T
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    ids = vocabulary["property_id"].to_numpy()
    recalls = [
        len(truth[doc_id] & set(ids[row])) / min(k, len(truth[doc_id]))
        for doc_id, row in zip(held_out["doc_id"], top, strict=True)
    ]
    return float(np.mean(recalls))


def projection_head(model: SentenceTransformer) -> tuple[np.ndarray, np.ndarray]:
    """The (weight, bias) of the head `train_projection_head` appended (the modules before it are the base's)."""
    from sentence_transformers.sentence_transformer.modules import Dense

    dense = model[len(model) - 2]
    if not isinstance(dense, Dense):
        raise ValueError(f"expected a Dense projection head before the final Normalize, found {type(dense).__name__}")
    return dense.linear.weight.detach().cpu().numpy(), dense.linear.bias.detach().cpu().numpy()


def has_projection_head(model: SentenceTransformer) -> bool:
    """True when `model` is a normalising base model plus the Dense + Normalize pair `train_projection_head`
    appends, the shape for which `through_head` over the base embeddings equals running the model."""
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    modules = [model[i] for i in range(len(model))]
    return (
        len(modules) >= 4
        and isinstance(modules[-1], Normalize)
        and isinstance(modules[-2], Dense)
        and isinstance(modules[-3], Normalize)
    )


def through_head(base: Embedder, weight: np.ndarray, bias: np.ndarray) -> Embedder:
    """Φ(t) = normalise(P · base(t)): the head's scores from base embeddings that are already computed (or cached),
    identical to running the saved model, without a second pass of the transformer over the corpus."""

    def embed(texts):
        return unit_rows(base(texts) @ weight.T + bias)

    return embed


def save_model(model: SentenceTransformer, directory: Path) -> None:
    model.save(str(directory))
