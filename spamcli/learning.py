"""Corrections as they come: a model folder learns the messages a user labels.

Each message learned is one optimizer step of online.py on that message,
from the state the folder holds, written back at once: ``spamcli learn``
takes milliseconds a message and never imports TensorFlow. A message given
again with the same label changes nothing; with the other label it is
relabelled (a step towards the new label). ``--forget`` undoes a learn as
far as one can undo a step of gradient descent: it takes steps on the
message's cross-entropy towards the score it had before it was first
learned, which was recorded, until the message scores within
FORGET_TOLERANCE of it (at most FORGET_STEPS). The message's own score
comes back; the effect on other messages that share its n-grams is undone
only in part.

The folder keeps every learned message in ``learned.jsonl`` (one JSON
object a line: its SHA-256, label, score before it was first learned, and
the first STORED_TOKENS tokens it was read as), so that ``spamcli train
--resume`` can train on them again. The file is only ever appended to, and
is shared through a hard link between a folder and the one that replaces
it; metadata.json records how many of its bytes belong to the model, so a
learn killed after appending leaves only bytes that no reader reads.

Writers of a model folder (learn, train) hold model_lock, so two learns at
once both take effect, one after the other. The folder is replaced as a
whole (artifacts.write_model_dir): a reader sees the model before or after
a learn, never between, and a learn killed at any moment leaves the model
whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spamcli import artifacts
from spamcli.calibration import Calibration
from spamcli.config import HAM, SPAM, TrainingConfig
from spamcli.corpus import RawMessage, ReadFailure
from spamcli.errors import InputError, ModelError
from spamcli.features import feature_indices
from spamcli.tokens import message_tokens

if TYPE_CHECKING:
    from spamcli.training import TrainingReport

FORGOTTEN = "forgotten"
# Tokens kept of each learned message for train --resume: more than any
# model reads (TrainingConfig.max_tokens), far fewer than a large message has.
STORED_TOKENS = 2_000
# --forget: steps towards the recorded score, and how close is close enough.
FORGET_STEPS = 20
FORGET_TOLERANCE = 0.01

_DIGEST = re.compile(r"[0-9a-f]{64}")
LEARNED_FORMAT = (
    "one JSON object a line, the last line of a message counting: sha256 (of the "
    "message's raw bytes), label (ham, spam or forgotten), score_before (its score "
    "before it was first learned), tokens (the first tokens the model read, see tokens.py)"
)


@dataclass(frozen=True)
class LearnedMessage:
    digest: str
    label: str
    tokens: str
    score_before: float | None = None


@dataclass(frozen=True)
class Correction:
    """One message given to ``learn``: its scores before and after (after is
    None when nothing was written)."""

    source: str
    label: str
    outcome: str  # "added", "relabelled", "unchanged", "forgotten", "not learned"
    score_before: float
    score_after: float | None


@dataclass
class LearnReport:
    model_dir: Path
    corrections: list[Correction]
    failures: list[ReadFailure]
    changed: bool
    learned_ham: int
    learned_spam: int
    steps: int = 0
    all_on_correct_side: bool = True
    seconds: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    copied_from: Path | None = None


# --------------------------------------------------------------------------
# The learned set on disk


def read_learned(
    model_dir: str | Path, metadata: dict[str, Any] | None = None
) -> dict[str, LearnedMessage]:
    """The learned messages of a model folder by digest, forgotten ones
    included (label FORGOTTEN); empty if none."""
    model_path = Path(model_dir)
    path = model_path / artifacts.LEARNED_FILE
    if metadata is None:
        try:
            metadata = json.loads(
                (model_path / artifacts.METADATA_FILE).read_text(encoding="utf-8")
            )
        except (OSError, ValueError):
            metadata = {}
    length = _learned_bytes(model_path, metadata)
    try:
        # Never a blocking open of a FIFO, never a link followed.
        with artifacts.open_model_file(path) as handle:
            # Not read(length): a length that lies would be allocated whole.
            data = handle.read()[:length]
    except FileNotFoundError:
        data = b""
    except OSError as error:
        raise ModelError(f"cannot read {path}: {error}") from None
    if length is not None and len(data) < length:
        # Learned messages are gone from the file, not from the weights: a
        # learn would take them for new and learn them twice.
        raise ModelError(
            f"{path} holds {len(data)} bytes where {artifacts.METADATA_FILE} records "
            f"{length}: learned messages are missing"
        )
    learned: dict[str, LearnedMessage] = {}
    for number, line in enumerate(data.splitlines(), 1):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelError(f"{path}, line {number}: {error}") from None
        if not isinstance(record, dict):
            raise ModelError(f"{path}, line {number}: not a JSON object")
        digest, label, tokens = record.get("sha256"), record.get("label"), record.get("tokens")
        before = record.get("score_before")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ModelError(f"{path}, line {number}: no valid sha256")
        if label not in (HAM, SPAM, FORGOTTEN) or not isinstance(tokens, str):
            raise ModelError(f"{path}, line {number}: no valid label and tokens")
        if not (
            before is None or (isinstance(before, float | int) and not isinstance(before, bool))
        ):
            raise ModelError(f"{path}, line {number}: no valid score_before")
        learned[digest] = LearnedMessage(
            digest, label, tokens, None if before is None else float(before)
        )
    return learned


def _learned_bytes(model_path: Path, metadata: Any) -> int | None:
    """How many bytes of learned.jsonl metadata.json says belong to the model
    (None: all of them, as no learn has recorded it)."""
    entry = metadata.get("learned") if isinstance(metadata, dict) else None
    length = entry.get("bytes") if isinstance(entry, dict) else None
    if length is not None and (
        isinstance(length, bool) or not isinstance(length, int) or length < 0
    ):
        raise ModelError(
            f"{model_path}: the length of {artifacts.LEARNED_FILE} in {artifacts.METADATA_FILE} "
            f"({length!r}) is not a number of bytes"
        )
    return length


def learned_count(model_dir: str | Path) -> int:
    """How many messages a folder has learned (and not forgotten); 0 for
    anything unreadable."""
    try:
        return sum(message.label != FORGOTTEN for message in read_learned(model_dir).values())
    except ModelError:
        return 0


def _learned_summary(learned: dict[str, LearnedMessage], length: int) -> dict[str, Any]:
    """metadata.json's ``learned`` entry."""
    labels = [message.label for message in learned.values()]
    return {
        "messages": labels.count(HAM) + labels.count(SPAM),
        "ham": labels.count(HAM),
        "spam": labels.count(SPAM),
        "forgotten": labels.count(FORGOTTEN),
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        "file": artifacts.LEARNED_FILE,
        "bytes": length,
        "format": LEARNED_FORMAT,
    }


def _record_line(message: LearnedMessage) -> bytes:
    record = {
        "sha256": message.digest,
        "label": message.label,
        "score_before": message.score_before,
        "tokens": message.tokens,
    }
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------
# learn and forget


class Learner:
    """A model folder open for learning: its network and learned set in
    memory. ``learn`` changes them; ``save`` writes them back as a new folder.

    Used by ``spamcli learn`` (open, learn, save, in one lock) and by
    long-running processes that learn many messages, which keep one open
    and save after each batch.
    """

    def __init__(self, model_dir: str | Path, expected_messages: int | None = None) -> None:
        """EXPECTED_MESSAGES: how many messages this learner will learn, if
        known; a few are learned with the standard library alone
        (online_light.py), which spares the NumPy import."""
        self.model_dir = Path(model_dir)
        self.metadata = artifacts.read_metadata(self.model_dir)
        self.header_policy: str = self.metadata["header_policy"]
        self.network: Any
        # The held-out messages that set the cut-offs (None: the folder has
        # none, and its cut-offs stay where train set them).
        self.calibration = Calibration.read(self.model_dir)
        self._light = expected_messages is not None and _light_enough(
            self.metadata, expected_messages
        )
        if self._light:
            from spamcli.online_light import LightNetwork

            self.network = LightNetwork(self.model_dir, self.metadata)
            # Each step moves the kept messages' row sums as it goes.
            self.network.calibration = self.calibration
        else:
            from spamcli.online import Network

            self.network = Network.from_folder(self.model_dir, self.metadata)
        self.learned = read_learned(self.model_dir, self.metadata)
        self._stored_bytes = _learned_bytes(self.model_dir, self.metadata)
        self._new_records: list[LearnedMessage] = []
        self.steps = 0

    def learn_message(self, raw: bytes, label: str | None, source: str = "-") -> Correction:
        """Learn one message as LABEL (ham or spam), or forget it (None)."""
        digest = hashlib.sha256(raw).hexdigest()
        tokens = message_tokens(raw, self.header_policy)
        indices = feature_indices(tokens, self.network.spec.features)
        score = self.network.score(indices)
        if not 0.0 <= score <= 1.0:
            # NaN or infinite weights, as the scorer refuses them (scoring.py):
            # a step from them would write a model that scores nothing.
            raise ModelError(
                f"{self.model_dir}: the model's weights give no score (not a number); "
                f"{artifacts.KERNEL_FILE} or {artifacts.WEIGHTS_FILE} is damaged"
            )
        known = self.learned.get(digest)
        if label is None:
            if known is None or known.label == FORGOTTEN:
                return Correction(source, known.label if known else "-", "not learned", score, None)
            target = known.score_before if known.score_before is not None else 0.5
            for _step in range(FORGET_STEPS):
                if abs(self.network.score(indices) - target) <= FORGET_TOLERANCE:
                    break
                self.network.learn(indices, target, smooth=False)
                self.steps += 1
            self._record(LearnedMessage(digest, FORGOTTEN, known.tokens, known.score_before))
            return Correction(source, known.label, "forgotten", score, self.network.score(indices))
        if known is not None and known.label == label:
            return Correction(source, label, "unchanged", score, None)
        outcome = "added" if known is None or known.label == FORGOTTEN else "relabelled"
        self.network.learn(indices, 1.0 if label == SPAM else 0.0)
        self.steps += 1
        before = known.score_before if known is not None else score
        stored = " ".join(tokens.split()[:STORED_TOKENS])
        self._record(LearnedMessage(digest, label, stored, before))
        return Correction(source, label, outcome, score, self.network.score(indices))

    def score(self, raw: bytes) -> float:
        """A message's score by the network as it is now, learned or not."""
        tokens = message_tokens(raw, self.header_policy)
        return self.network.score(feature_indices(tokens, self.network.spec.features))

    def _record(self, message: LearnedMessage) -> None:
        self.learned[message.digest] = message
        self._new_records.append(message)

    @property
    def changed(self) -> bool:
        return bool(self._new_records)

    def save(self) -> Path:
        """Replace the folder with one holding what has been learned."""
        if not self._new_records:
            return self.model_dir
        model_path = self.model_dir
        metadata = dict(self.metadata)
        compacted = False
        if self.calibration is not None:
            # The cut-offs follow the held-out messages learning has moved.
            if not self._light:
                self.calibration.refresh(self.network)
            threshold, ham_cutoff = self.calibration.cut_offs(self.network, metadata)
            metadata["threshold"] = threshold
            if ham_cutoff is not None:
                metadata["ham_cutoff"] = ham_cutoff

        def write_contents(directory: Path) -> None:
            nonlocal compacted
            # Files this module does not write (a model card, notes, the
            # evaluation log) are kept.
            artifacts.copy_kept_files(model_path, directory, artifacts.MODEL_FILES)
            metadata["weights"], compacted = self.network.write(directory)
            if self.calibration is not None:
                self.calibration.write(directory)
            metadata["learned"] = _learned_summary(
                self.learned,
                _append_learned(model_path, directory, self._stored_bytes, self._new_records),
            )
            artifacts.write_metadata(directory, metadata)

        artifacts.write_model_dir(model_path, write_contents)
        self.network.after_write(model_path, compacted)
        self.metadata = metadata
        self._stored_bytes = metadata["learned"]["bytes"]
        self._new_records = []
        return model_path


def _light_enough(metadata: dict[str, Any], messages: int) -> bool:
    """Whether a learn of MESSAGES messages may take the standard-library path:
    few messages, and far enough from compaction that it cannot be needed
    (n tokens have at most 2n - 1 distinct unigrams and bigrams)."""
    from spamcli.online_light import COMPACTION_SHARE, LIGHT_MESSAGE_LIMIT

    if messages > LIGHT_MESSAGE_LIMIT:
        return False
    changed = artifacts.weights_entry(metadata).get("changed_rows")
    features = metadata["features"]
    buckets = 1 << int(features["bits"])
    max_tokens = features.get("max_tokens")
    per_message = 2 * max_tokens if isinstance(max_tokens, int) else buckets
    return (
        isinstance(changed, int) and changed + per_message * messages < COMPACTION_SHARE * buckets
    )


def _append_learned(
    model_path: Path, directory: Path, stored_bytes: int | None, records: Sequence[LearnedMessage]
) -> int:
    """Put the folder's learned.jsonl, with RECORDS appended, in DIRECTORY;
    return its length in bytes."""
    existing = model_path / artifacts.LEARNED_FILE
    target = directory / artifacts.LEARNED_FILE
    if existing.is_file() and not existing.is_symlink():
        artifacts.link_or_copy(existing, target)
    with open(target, "ab") as handle:
        # Bytes past the recorded length were appended by a learn that was
        # killed before its folder was put in place: no reader reads them.
        if stored_bytes is not None:
            handle.truncate(min(stored_bytes, os.fstat(handle.fileno()).st_size))
        for record in records:
            handle.write(_record_line(record))
        handle.flush()
        return os.fstat(handle.fileno()).st_size


def learn(
    model_dir: str | Path,
    spam: Iterable[RawMessage | ReadFailure] = (),
    ham: Iterable[RawMessage | ReadFailure] = (),
    forget: bool = False,
    prepare: Callable[[Path], Path | None] | None = None,
) -> LearnReport:
    """Learn the messages with their labels (or, with ``forget``, undo their
    learning) and replace the folder atomically, under the folder's lock.

    ``prepare(model_dir)``, if given, is called under the lock before the
    folder is read; it may return another folder to learn into instead
    (the built-in model is copied to the user's model folder that way).
    Unreadable inputs are returned in the report.
    """
    started = time.monotonic()
    failures: list[ReadFailure] = []
    model_path = Path(model_dir)
    copied_from: Path | None = None
    with artifacts.model_lock(model_path):
        if prepare is not None:
            replacement = prepare(model_path)
            if replacement is not None:
                copied_from, model_path = model_path, replacement
        given: list[tuple[str, str, bytes]] = []
        labels_by_digest: dict[str, str] = {}
        for label, messages in ((SPAM, spam), (HAM, ham)):
            for item in messages:
                if isinstance(item, ReadFailure):
                    failures.append(item)
                    continue
                digest = hashlib.sha256(item.raw).hexdigest()
                if digest in labels_by_digest:
                    if labels_by_digest[digest] != label:
                        raise InputError(f"{item.source} is given both as ham and as spam")
                    continue  # the same bytes twice: learned once
                labels_by_digest[digest] = label
                given.append((item.source, label, item.raw))
        if not given and failures:
            first = failures[0]
            raise InputError(f"no message could be read (first: {first.source}: {first.reason})")
        learner = Learner(model_path, expected_messages=len(given))
        corrections = [
            learner.learn_message(raw, None if forget else label, source)
            for source, label, raw in given
        ]
        changed = learner.changed
        learner.save()
    cutoffs = (
        float(learner.metadata["threshold"]),
        float(learner.metadata.get("ham_cutoff", learner.metadata["threshold"])),
    )
    report = LearnReport(
        model_dir=model_path,
        corrections=[],
        failures=failures,
        changed=changed,
        learned_ham=sum(m.label == HAM for m in learner.learned.values()),
        learned_spam=sum(m.label == SPAM for m in learner.learned.values()),
        steps=learner.steps,
        copied_from=copied_from,
    )
    for correction, (_source, _label, raw) in zip(corrections, given, strict=True):
        # The score after every message of this learn, not just after its own step.
        after = learner.score(raw) if changed and correction.score_after is not None else None
        correction = Correction(
            correction.source, correction.label, correction.outcome, correction.score_before, after
        )
        report.corrections.append(correction)
        report.outcomes[correction.outcome] = report.outcomes.get(correction.outcome, 0) + 1
        if correction.outcome in ("added", "relabelled") and correction.score_after is not None:
            on_side = (
                correction.score_after >= cutoffs[0]
                if correction.label == SPAM
                else correction.score_after < cutoffs[1]
            )
            report.all_on_correct_side &= on_side
    report.seconds = time.monotonic() - started
    return report


# --------------------------------------------------------------------------
# train --resume


def train_with_learned(
    model_dir: str | Path,
    sources: Sequence[str | Path] = (),
    ham_paths: Sequence[str | Path] = (),
    spam_paths: Sequence[str | Path] = (),
    config: TrainingConfig | None = None,
    reading_progress: Callable[[int], None] | None = None,
    fit_verbosity: int = 0,
    epoch_progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[TrainingReport, int]:
    """Train a new model into a model folder with its learned messages added
    to the training data (their labels win over a copy in the corpus), and
    keep them in the new folder. Returns the report and the number of learned
    messages included."""
    from spamcli.training import train

    config = config or TrainingConfig()
    model_path = Path(model_dir)
    with artifacts.model_lock(model_path):
        metadata = artifacts.read_metadata(model_path)
        learned = read_learned(model_path, metadata)
        kept = {
            digest: message for digest, message in learned.items() if message.label != FORGOTTEN
        }
        if kept and metadata["header_policy"] != config.header_policy:
            raise ModelError(
                f"the learned messages in {model_path} were read with --headers "
                f"{metadata['header_policy']}; train with the same headers to include them"
            )
        ordered = [kept[digest] for digest in sorted(kept)]

        def keep_learned(directory: Path, new_metadata: dict[str, Any]) -> None:
            if not ordered:
                return
            with open(directory / artifacts.LEARNED_FILE, "wb") as handle:
                for message in ordered:
                    handle.write(_record_line(message))
                length = handle.tell()
            new_metadata["learned"] = {
                **_learned_summary(kept, length),
                "included_in_training": True,
            }

        report = train(
            model_path,
            sources,
            ham_paths,
            spam_paths,
            config,
            reading_progress=reading_progress,
            fit_verbosity=fit_verbosity,
            extra_texts=[(message.tokens, message.label == SPAM) for message in ordered],
            replaced_digests=set(learned),
            add_to_folder=keep_learned,
            locked=True,
            epoch_progress=epoch_progress,
        )
    return report, len(ordered)
