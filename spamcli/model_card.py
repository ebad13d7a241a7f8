"""What a model folder says about itself: its card, and its evaluation log.

The card is gathered from ``metadata.json`` (how, when and on what the model
was trained, its cut-offs and validation figures), the weights' shapes (read
from the .npz headers with the standard library, so ``spamcli info`` needs
neither NumPy nor TensorFlow), and
``evaluations.jsonl``, the log ``spamcli evaluate`` appends to.

The log is not part of the model: it is never read when scoring, and it is
appended to in place, not through artifacts.write_model_dir, so recording an
evaluation leaves the model's own files untouched. Each record is one JSON
line written with a single write() to a file opened with O_APPEND, so two
evaluations finishing at once never interleave their lines. Retraining
replaces the folder, log included: the records describe the model they sit
beside.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spamcli import __version__, artifacts
from spamcli.errors import ModelError

EVALUATIONS_FILE = "evaluations.jsonl"
# The figures of an evaluation result that a record keeps.
RECORDED_METRICS = (
    "messages",
    "ham",
    "spam",
    "roc_auc",
    "false_positives",
    "false_negatives",
    "threshold",
)


def model_card(model_dir: str | Path) -> dict[str, Any]:
    """Everything a model folder says about itself, as plain data."""
    model_path = Path(model_dir)
    metadata = artifacts.read_metadata(model_path)
    # Opened to check every shape, as the scorer will: a card for a folder
    # that cannot score would mislead.
    weights = artifacts.open_weights(model_path, metadata)
    network = weights.network
    _features, network_entry = artifacts.network_metadata(network)
    layers = network_entry["layers"]
    threshold = float(metadata["threshold"])
    ham_cutoff = float(metadata.get("ham_cutoff", threshold))
    rule = metadata.get("threshold_rule")
    at_training = rule.get("threshold_at_training") if isinstance(rule, dict) else None
    evaluations, unreadable = read_evaluations(model_path)
    return {
        "model_dir": str(model_path.absolute()),
        "format_version": metadata["format_version"],
        "created": metadata.get("created"),
        "versions": metadata.get("versions", {}),
        "header_policy": metadata["header_policy"],
        "training_data": metadata.get("training_data", {}),
        "training": metadata.get("training", {}),
        "features": metadata["features"],
        "layers": layers,
        "learning": metadata.get("learning", {}),
        "weights": metadata.get("weights", {}),
        "hyperparameters": metadata.get("hyperparameters", {}),
        "cutoffs": {
            "spam": threshold,
            "ham": ham_cutoff,
            "unsure_band": ham_cutoff < threshold,
            # Where train set the spam cut-off, before learning moved it
            # (calibration.py); None for a folder whose cut-off stays put.
            "spam_at_training": at_training if isinstance(at_training, float) else None,
            "new_ham_flagged_at_most": false_positive_rate_bound(metadata.get("validation")),
        },
        "validation": metadata.get("validation"),
        "export_max_difference": metadata.get("training", {}).get("export_max_difference"),
        "learned": metadata.get("learned"),
        "evaluations": evaluations,
        "unreadable_evaluations": unreadable,
    }


def false_positive_rate_bound(validation: dict[str, Any] | None) -> float | None:
    """At most how often new ham scores at or above the spam cut-off, judged
    from the validation ham: (k + 1) / (n + 1), where k of the n validation
    ham did. None without validation ham.

    The bound of conformal prediction: if a new ham is drawn like the
    validation ham, its rank among the n + 1 is equally likely to be any, and
    it can only reach the cut-off by ranking among the top k + 1. So a
    cut-off just above every one of 498 validation ham still flags up to 1 in
    499 new ham, 0.2 %: 498 ham cannot resolve a rate of 0.1 %. It holds on
    average over the draw of the validation ham, and only for mail like it:
    newer mail, or a kind the training mail lacked, can score higher.
    """
    if not isinstance(validation, dict):
        return None
    ham, flagged = validation.get("ham"), validation.get("false_positives")
    if not isinstance(ham, int) or not isinstance(flagged, int) or ham < 1:
        return None
    return (flagged + 1) / (ham + 1)


def read_evaluations(model_dir: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The records of the evaluation log, oldest first, and how many lines
    were not records (skipped rather than fatal: the log is informative)."""
    path = Path(model_dir) / EVALUATIONS_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    except OSError as error:
        raise ModelError(f"cannot read {path}: {error.strerror or error}") from None
    records: list[dict[str, Any]] = []
    unreadable = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            unreadable += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            unreadable += 1
    return records, unreadable


def evaluation_record(
    result: dict[str, Any],
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
    when: datetime | None = None,
) -> dict[str, Any]:
    """The log record of one evaluation: when, on what (absolute paths, so
    the record reads the same from any folder), and the main figures."""
    moment = when or datetime.now(UTC)
    return {
        "date": moment.isoformat(timespec="seconds"),
        "spamcli": __version__,
        "sources": [str(Path(path).absolute()) for path in sources],
        "ham_paths": [str(Path(path).absolute()) for path in ham_paths],
        "spam_paths": [str(Path(path).absolute()) for path in spam_paths],
        **{name: result.get(name) for name in RECORDED_METRICS},
    }


def record_evaluation(model_dir: str | Path, record: dict[str, Any]) -> Path:
    """Append one record to the model folder's evaluation log, in one write."""
    path = Path(model_dir) / EVALUATIONS_FILE
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    # O_NOFOLLOW: a link planted in a shared model folder cannot turn the
    # append into a write elsewhere.
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags, 0o666)
        try:
            written = os.write(descriptor, line)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise ModelError(
            f"cannot record the evaluation in {path}: {error.strerror or error}"
        ) from None
    if written != len(line):
        raise ModelError(
            f"cannot record the evaluation in {path}: {written} of {len(line)} bytes written"
        )
    return path
