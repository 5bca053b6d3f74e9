"""Task layer: data loading, tokenisation/batching and metrics for SST-2, CoLA (GLUE) and E2E NLG."""

from .batching import (
    IGNORE_INDEX,
    FeatureDataset,
    ResumableBatchSampler,
    batch_indices,
    batches,
    encode_classification,
    num_batches,
    pad_collate,
)
from .e2e import (
    E2EExample,
    decode_generations,
    encode_lm_pair,
    encode_lm_pairs,
    format_prompt,
    lm_collate,
    load_e2e,
    prompt_batch,
    training_pairs,
)
from .glue import ClassificationData, load_split, subsample_indices
from .metrics import E2E_METRICS, accuracy, classification_metrics, e2e_metrics, matthews_corrcoef
from .paths import DATA_ENV_VAR, resolve_data_dir
from .registry import TaskSpec, get_task, list_tasks

__all__ = [
    "DATA_ENV_VAR",
    "E2E_METRICS",
    "IGNORE_INDEX",
    "ClassificationData",
    "E2EExample",
    "FeatureDataset",
    "ResumableBatchSampler",
    "TaskSpec",
    "accuracy",
    "batch_indices",
    "batches",
    "classification_metrics",
    "decode_generations",
    "e2e_metrics",
    "encode_classification",
    "encode_lm_pair",
    "encode_lm_pairs",
    "format_prompt",
    "get_task",
    "list_tasks",
    "lm_collate",
    "load_e2e",
    "load_split",
    "matthews_corrcoef",
    "num_batches",
    "pad_collate",
    "prompt_batch",
    "resolve_data_dir",
    "subsample_indices",
    "training_pairs",
]
