"""The baselines' representations, fitted once per corpus (and factor count), so the evaluation only reads them.

Before this asset the evaluation re-fitted TF-IDF and LDA and re-encoded every document on each run, even when only
the task settings had changed: a third of a Bills run. Now a task edit re-runs `downstream_evaluation` alone.
LDA has as many topics as there are factors (the interpretable peer at one dimensionality), hence the input.
"""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field
from scipy import sparse

from resources import EncoderResource

from .checks import spec
from .core.artifacts import BaselineFeatures, FactorModel
from .core.content_version import array_version, combine
from .core.representations import bertopic_installed, fit_baselines
from .partitions import dataset_for
from .publishing import publish
from .sources import base_encoder, peer_libraries, stage_asset

ASSET = "baseline_representations"


class BaselineConfig(dg.Config):
    seed: int = Field(0, description="Seed of LDA and of BERTopic's UMAP.")
    bertopic: bool | None = Field(
        None, description="Add BERTopic's topic distribution; if unset, whenever the `peers` extra is installed."
    )


@stage_asset(
    deps=[base_encoder, peer_libraries],
    code_version="1",
    kinds={"scikitlearn"},
    check_specs=[spec(ASSET, "baselines_are_valid", "every baseline has one finite row per document")],
)
def baseline_representations(
    context: AssetExecutionContext,
    config: BaselineConfig,
    raw_documents: pd.DataFrame,
    latent_factors: FactorModel,
    encoder: EncoderResource,
) -> Iterator[object]:
    """TF-IDF, LDA, base-encoder embeddings (and BERTopic), fitted on the training documents only."""
    dataset = dataset_for(context)
    texts = raw_documents["text"].tolist()
    train = (raw_documents["split"] == "train").to_numpy()
    with_bertopic = bertopic_installed() if config.bertopic is None else config.bertopic
    if with_bertopic and not bertopic_installed():
        raise dg.Failure("bertopic: true, but BERTopic is not installed: pip install -e '.[peers]'")
    embeddings = encoder.base_embedder(dataset.encoder.max_seq_length)(texts)
    n_topics = int(latent_factors.summary["n_factors"])
    features = fit_baselines(texts, train, embeddings, n_topics, config.seed, bertopic=with_bertopic)
    problems = baseline_problems(features, len(raw_documents))
    yield from publish(
        context,
        BaselineFeatures(features, raw_documents["doc_id"].to_numpy(), {"lda_topics": n_topics}),
        version=combine(*(feature_version(features[name]) for name in sorted(features))),
        checks=[
            dg.AssetCheckResult(
                check_name="baselines_are_valid",
                passed=not problems,
                description="; ".join(problems) or "every baseline has one finite row per document",
            )
        ],
        config=config,
        metadata={
            "baselines": ", ".join(features),
            "lda_topics": n_topics,
            **{f"{name}_columns": int(x.shape[1]) for name, x in features.items()},
        },
    )


def feature_version(x: object) -> str:
    if sparse.issparse(x):
        csr = sparse.csr_matrix(x)
        return combine(array_version(csr.data), array_version(csr.indices), array_version(csr.indptr))
    return array_version(np.asarray(x))


def baseline_problems(features: dict[str, object], n_documents: int) -> list[str]:
    """What is wrong with the fitted baselines, by name: a wrong row count or a non-finite value."""
    problems = []
    for name, x in features.items():
        values = sparse.csr_matrix(x).data if sparse.issparse(x) else np.asarray(x)
        if x.shape[0] != n_documents:
            problems.append(f"{name}: {x.shape[0]} rows for {n_documents} documents")
        elif not np.isfinite(values).all():
            problems.append(f"{name}: non-finite values")
    return problems
