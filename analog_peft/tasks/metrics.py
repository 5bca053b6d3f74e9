"""Task metrics: the GLUE metrics (accuracy, F1, Matthews correlation, Pearson, Spearman) and the E2E NLG
challenge metrics.

GLUE: accuracy and binary F1 of the positive class 1 (MRPC, QQP), Matthews correlation (CoLA), Pearson and
Spearman correlations of the predicted scores (STS-B; ``scipy.stats``). Correlations of a constant vector
are defined as 0 (as Matthews' here and in scikit-learn), so a model that predicts one value everywhere
scores 0, not NaN.

E2E metrics follow the official ``e2e-metrics`` script (``measure_scores.py``) and its scales: BLEU, METEOR
and ROUGE-L as fractions in [0, 1], NIST and CIDEr raw (NIST ~ 0..15, CIDEr-D ~ 0..10). Each prediction is
scored against all references of its MR.

Which code computes what, and why:

* **BLEU** -- ``sacrebleu`` (corpus BLEU-4, ``13a`` tokenisation = mteval-v13a, lowercased as mteval's
  default, closest reference length, no smoothing). sacrebleu is the maintained re-implementation of
  mteval-v13a, the script the official metrics call; its 100-scale score is divided by 100. Checked on E2E
  test references: n-gram counts and lengths equal those of e2e-metrics' Python ``pymteval``, except that
  n-gram totals of hypotheses shorter than n are 0 here (as in the Perl script), not negative.
* **NIST** -- implemented here (:func:`nist`, ~40 lines) as in e2e-metrics' ``pymteval`` (its Python
  mteval-v13a): info weights from all references, n-gram hits clipped by the maximum count in any reference,
  average reference length in the brevity term, n = 5; same ``13a`` lowercased tokens as BLEU. (pymteval's
  authors note that the Perl script, which pads MRs with fewer references with empty ones, differs slightly
  for a variable number of references.) ``nltk.translate.nist_score`` was not used: with several references
  it scores against the single best reference and its length, which is not what mteval computes (with one
  reference the two agree, as tested).
* **METEOR** -- ``pycocoevalcap`` (METEOR 1.5 jar with its English paraphrase table, run on Java, offline) on
  PTB-tokenised text, as the official script does through the MS-COCO caption evaluation code. NLTK's
  METEOR was not used: it needs the WordNet corpus (an internet download) and is a simplified variant
  without paraphrases.
* **ROUGE-L** and **CIDEr** (CIDEr-D) -- ``pycocoevalcap`` (pure Python), on the same PTB-tokenised,
  lowercased, punctuation-free text (Stanford PTBTokenizer jar shipped with ``pycocoevalcap``).

METEOR, ROUGE-L and CIDEr therefore need ``java`` on the PATH; ask for BLEU/NIST only with
``e2e_metrics(..., metrics=("BLEU", "NIST"))`` where Java is missing.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

E2E_METRICS = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")

# Tokens dropped after PTB tokenisation, as in the MS-COCO caption evaluation code.
_COCO_PUNCTUATION = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)


# --------------------------------------------------------------------------------
# Classification


def _as_int_array(values: Sequence[Any] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}.")
    return arr.astype(np.int64)


def accuracy(predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Fraction of predictions equal to the labels."""
    p, y = _as_int_array(predictions, "predictions"), _as_int_array(labels, "labels")
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"Need equally many, non-zero predictions and labels; got {p.size} and {y.size}.")
    return float((p == y).mean())


def matthews_corrcoef(predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Matthews correlation coefficient (Gorodkin's multi-class R_K; the usual MCC for two classes).

    ``(c*s - sum_k p_k t_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2))`` with ``s`` samples,
    ``c`` correct, ``p_k``/``t_k`` times class k is predicted/true. Defined as 0 when a denominator factor is
    0 (constant predictions or labels), as in scikit-learn.
    """
    p, y = _as_int_array(predictions, "predictions"), _as_int_array(labels, "labels")
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"Need equally many, non-zero predictions and labels; got {p.size} and {y.size}.")
    classes = np.union1d(p, y)
    pk = np.array([(p == k).sum() for k in classes], dtype=np.float64)
    tk = np.array([(y == k).sum() for k in classes], dtype=np.float64)
    s, c = float(p.size), float((p == y).sum())
    cov_py = c * s - float(pk @ tk)
    cov_pp = s * s - float(pk @ pk)
    cov_yy = s * s - float(tk @ tk)
    if cov_pp == 0.0 or cov_yy == 0.0:
        return 0.0
    return cov_py / math.sqrt(cov_pp * cov_yy)


def f1_score(predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray, positive: int = 1) -> float:
    """Binary F1 of class ``positive``: ``2 TP / (2 TP + FP + FN)`` (0 when there is no positive at all)."""
    p, y = _as_int_array(predictions, "predictions"), _as_int_array(labels, "labels")
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"Need equally many, non-zero predictions and labels; got {p.size} and {y.size}.")
    tp = float(((p == positive) & (y == positive)).sum())
    fp_fn = float(((p == positive) ^ (y == positive)).sum())
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp_fn)


def _as_float_pair(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.shape != y.shape or p.size < 2:
        raise ValueError(f"Need equally many (>= 2) predictions and labels; got {p.size} and {y.size}.")
    return p, y


def pearson(predictions: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation (``scipy.stats.pearsonr``); 0 when either side is constant."""
    from scipy import stats

    p, y = _as_float_pair(predictions, labels)
    if np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(stats.pearsonr(p, y).statistic)


def spearman(predictions: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation, ties ranked by their average (``scipy.stats.spearmanr``); 0 when constant."""
    from scipy import stats

    p, y = _as_float_pair(predictions, labels)
    if np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(stats.spearmanr(p, y).statistic)


def classification_metrics(predictions: Sequence[int], labels: Sequence[int]) -> dict[str, float]:
    """``{"accuracy": ..., "matthews_correlation": ...}``."""
    return {
        "accuracy": accuracy(predictions, labels),
        "matthews_correlation": matthews_corrcoef(predictions, labels),
    }


def regression_metrics(predictions: Sequence[float], labels: Sequence[float]) -> dict[str, float]:
    """``{"pearson": ..., "spearman": ...}``."""
    return {"pearson": pearson(predictions, labels), "spearman": spearman(predictions, labels)}


#: Every GLUE metric by name: ``fn(predictions, labels) -> float``.
GLUE_METRICS = {
    "accuracy": accuracy,
    "f1": f1_score,
    "matthews_correlation": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def glue_metrics(names: Sequence[str], predictions: Sequence[Any], labels: Sequence[Any]) -> dict[str, float]:
    """The metrics ``names`` (keys of :data:`GLUE_METRICS`), in that order."""
    unknown = [n for n in names if n not in GLUE_METRICS]
    if unknown:
        raise ValueError(f"Unknown metrics {unknown}; choose from {list(GLUE_METRICS)}.")
    return {n: GLUE_METRICS[n](predictions, labels) for n in names}


# --------------------------------------------------------------------------------
# E2E: BLEU / NIST (mteval-v13a tokenisation)


def _require(module: str, pip_name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"This metric needs `{pip_name}`: pip install {pip_name}") from err


@functools.lru_cache(maxsize=1)
def _tokenizer_13a() -> Any:
    return _require("sacrebleu.tokenizers.tokenizer_13a", "sacrebleu").Tokenizer13a()


def mteval_tokenize(text: str) -> list[str]:
    """mteval-v13a tokenisation (sacrebleu's ``13a``), lowercased."""
    return _tokenizer_13a()(text.strip()).lower().split()


def _check(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists.")
    if not predictions:
        raise ValueError("No predictions to score.")
    if isinstance(references[0], str):
        raise ValueError("references must be a list of lists of strings (several references per prediction).")
    for i, refs in enumerate(references):
        if not refs:
            raise ValueError(f"Prediction {i} has no reference.")


def bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 as a fraction, computed by sacrebleu like mteval-v13a (see module docstring)."""
    _check(predictions, references)
    sacrebleu = _require("sacrebleu", "sacrebleu")
    width = max(len(r) for r in references)
    streams = [[refs[j] if j < len(refs) else None for refs in references] for j in range(width)]
    metric = sacrebleu.metrics.BLEU(lowercase=True, tokenize="13a", smooth_method="none")
    return metric.corpus_score(list(predictions), streams).score / 100.0


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def nist(predictions: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 5) -> float:
    """Corpus NIST (mteval-v13a definition, multi-reference), on mteval-tokenised lowercased text.

    ``NIST = BP * sum_n [sum_hits info(g) / #hyp n-grams]`` with ``info(w1..wn) = log2(count(w1..wn-1) /
    count(w1..wn))`` over all reference n-grams (0-gram count = total reference words), hits clipped by the
    largest count in any single reference, and ``BP = exp(-beta log^2(min(1, L_hyp / L_ref_avg)))``,
    ``beta = -ln 0.5 / ln^2 1.5``.
    """
    _check(predictions, references)
    hyps = [mteval_tokenize(h) for h in predictions]
    refs = [[mteval_tokenize(r) for r in rs] for rs in references]
    ref_counts: list[Counter] = [Counter() for _ in range(max_n + 1)]
    avg_ref_len = 0.0
    for rs in refs:
        for r in rs:
            ref_counts[0][()] += len(r)
            for n in range(1, max_n + 1):
                ref_counts[n].update(_ngrams(r, n))
        avg_ref_len += sum(len(r) for r in rs) / len(rs)

    def info(gram: tuple[str, ...]) -> float:
        return math.log2(ref_counts[len(gram) - 1][gram[:-1]] / ref_counts[len(gram)][gram])

    score = 0.0
    for n in range(1, max_n + 1):
        gained, total = 0.0, 0
        for h, rs in zip(hyps, refs, strict=True):
            hyp_grams = _ngrams(h, n)
            total += sum(hyp_grams.values())
            max_ref: dict[tuple[str, ...], int] = defaultdict(int)
            for r in rs:
                for g, cnt in _ngrams(r, n).items():
                    max_ref[g] = max(max_ref[g], cnt)
            gained += sum(info(g) * min(cnt, max_ref[g]) for g, cnt in hyp_grams.items() if g in max_ref)
        score += gained / total if total else 0.0
    hyp_len = sum(len(h) for h in hyps)
    ratio = hyp_len / avg_ref_len if avg_ref_len else 0.0
    if ratio <= 0:
        return 0.0
    beta = -math.log(0.5) / math.log(1.5) ** 2
    return score * (1.0 if ratio >= 1 else math.exp(-beta * math.log(ratio) ** 2))


# --------------------------------------------------------------------------------
# E2E: METEOR / ROUGE-L / CIDEr (MS-COCO caption evaluation code)


def _coco_dir() -> Path:
    spec = _require("pycocoevalcap", "pycocoevalcap==1.2").__spec__
    return Path(next(iter(spec.submodule_search_locations)))


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(
            "METEOR, ROUGE-L and CIDEr need Java (the PTB tokenizer and METEOR 1.5 are Java programs) and no "
            "`java` is on the PATH: install a JRE (e.g. apt-get install default-jre-headless) or request "
            "metrics=('BLEU', 'NIST')."
        )
    return java


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """Stanford PTB tokenisation, lowercased, punctuation dropped (as in MS-COCO caption evaluation)."""
    jar = _coco_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"
    # An empty line would shift the output; "." stands in for it and is dropped as punctuation.
    lines = [" ".join(t.split()) or "." for t in texts]
    with tempfile.TemporaryDirectory(prefix="analog_peft_ptb_") as tmp:
        src = Path(tmp) / "sentences.txt"
        src.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cmd = [
            _java(),
            "-cp",
            str(jar),
            "edu.stanford.nlp.process.PTBTokenizer",
            "-preserveLines",
            "-lowerCase",
            str(src),
        ]
        out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode("utf-8")
    rows = out.split("\n")[: len(lines)]
    if len(rows) != len(lines):
        raise RuntimeError(f"PTB tokenizer returned {len(rows)} lines for {len(lines)} inputs.")
    return [" ".join(w for w in row.rstrip().split(" ") if w and w not in _COCO_PUNCTUATION) for row in rows]


@functools.lru_cache(maxsize=1)
def _meteor_scorer() -> Any:
    _java()
    return _require("pycocoevalcap.meteor.meteor", "pycocoevalcap==1.2").Meteor()


def _coco_inputs(
    predictions: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    flat = ptb_tokenize(list(predictions) + [r for rs in references for r in rs])
    res = {i: [flat[i]] for i in range(len(predictions))}
    gts, pos = {}, len(predictions)
    for i, rs in enumerate(references):
        gts[i] = flat[pos : pos + len(rs)]
        pos += len(rs)
    return gts, res


# --------------------------------------------------------------------------------
# E2E: all together


def e2e_metrics(
    predictions: list[str], references: list[list[str]], metrics: Sequence[str] = E2E_METRICS
) -> dict[str, float]:
    """Official E2E NLG metrics of ``predictions`` against all ``references`` of each MR.

    Returns ``{"BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"}`` (or the subset in ``metrics``) on the
    e2e-metrics scales: BLEU/METEOR/ROUGE-L fractions, NIST and CIDEr raw. See the module docstring for the
    libraries.
    """
    _check(predictions, references)
    unknown = set(metrics) - set(E2E_METRICS)
    if unknown:
        raise ValueError(f"Unknown E2E metrics {sorted(unknown)}; choose from {list(E2E_METRICS)}.")
    predictions = [p.replace("\n", " ") for p in predictions]
    out: dict[str, float] = {}
    if "BLEU" in metrics:
        out["BLEU"] = bleu(predictions, references)
    if "NIST" in metrics:
        out["NIST"] = nist(predictions, references)
    coco = [m for m in ("METEOR", "ROUGE_L", "CIDEr") if m in metrics]
    if coco:
        gts, res = _coco_inputs(predictions, references)
        if "METEOR" in coco:
            out["METEOR"] = float(_meteor_scorer().compute_score(gts, res)[0])
        if "ROUGE_L" in coco:
            rouge = _require("pycocoevalcap.rouge.rouge", "pycocoevalcap==1.2")
            out["ROUGE_L"] = float(rouge.Rouge().compute_score(gts, res)[0])
        if "CIDEr" in coco:
            cider = _require("pycocoevalcap.cider.cider", "pycocoevalcap==1.2")
            out["CIDEr"] = float(cider.Cider().compute_score(gts, res)[0])
    return {m: out[m] for m in E2E_METRICS if m in out}


__all__ = [
    "E2E_METRICS",
    "GLUE_METRICS",
    "accuracy",
    "bleu",
    "classification_metrics",
    "e2e_metrics",
    "f1_score",
    "glue_metrics",
    "matthews_corrcoef",
    "mteval_tokenize",
    "nist",
    "pearson",
    "ptb_tokenize",
    "regression_metrics",
    "spearman",
]
