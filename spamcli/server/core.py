"""The scanning core of ``spamcli serve``: one loaded model, its reload,
the limits, and the one scan result every protocol renders.

This is the only module of the daemon that calls the scorer and the
learner; the protocol adapters (spamd.py, http.py, milter.py) read bytes,
call ``ScanService.scan`` or ``ScanService.learn``, and write the result in
their protocol's shape. Nothing here knows a protocol.

The points scale. spamc, Exim and everything written for SpamAssassin
read a score in points against a required score, 5.0 by default, and
decide "spam" by score >= required. spamcli's model gives a spam
probability and a spam cut-off instead, so the points are the log-odds of
the probability, base 2, shifted so that the cut-off lands on 5.0::

    points = 5.0 + log2(p / (1 - p)) - log2(c / (1 - c))

for a spam probability p and the model's spam cut-off c. One point more
is twice the odds of spam; a message is spam exactly when its points
reach 5.0, so ``spamc -c`` exits 1 (spam) exactly when ``spamcli filter``
says spam, and Exim's ``spam`` condition (score >= threshold) agrees too.
The unsure band, if the model has one, is below 5.0 (spamc sees no
unsure: False). Probabilities are clamped to [1e-9, 1 - 1e-9] first, so
the points stay finite: for a cut-off of 0.84 they run from about -27
to +33; p = 0.5 gives 2.6 or 2.7 points, 0.99 gives 9.2 or 9.3, 0.01 about -4.
Points are shown to one decimal as spamd shows them, rounded down to 4.9
for a message that is not spam but would round to 5.0 (SpamAssassin's own
rule, Util::get_tag_value_for_score), so a reader of the rounded figure
never sees a verdict the daemon did not give.

Reload. A request takes the current ``LoadedModel`` once, at its start,
and scores with it to the end: a reload builds a whole new scorer and then
swaps one reference, so no request is ever scored by half a model and
none waits. Every scan first compares the model folder's identity (device,
inode, modification time: writers replace the folder with a rename) with
the loaded one's, a stat of about 2 us against 0.4 ms for the scan, and
reloads when it changed; loading the built-in model took 2 ms here. A
folder that fails to load leaves the old model serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spamcli.config import HAM, SPAM
from spamcli.errors import ModelError, ServeError
from spamcli.server.stats import Stats

if TYPE_CHECKING:
    from spamcli.filtering import FilteredMessage
    from spamcli.learning import Learner
    from spamcli.scoring import Cutoffs, Scorer

# The points scale (see the module's doc).
REQUIRED_POINTS = 5.0
PROBABILITY_CLAMP = 1e-9
# spamc's default maximum message size, -s 500k: it sends nothing larger,
# and answers such mail unscanned itself.
DEFAULT_MAX_MESSAGE_BYTES = 500 * 1024
# The n-grams each way a report (spamd REPORT, HTTP /checkv2) lists: an
# explanation costs about 1 ms more than the 0.4 ms of the scan itself.
DEFAULT_EXPLAIN_TOP = 5
UNSCANNED = "unscanned"


@dataclass(frozen=True)
class Limits:
    """What one connection and the whole daemon may cost; every front end
    applies these, and nothing else."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Larger messages are answered unscanned, and never held whole in memory."""
    idle_timeout: float = 10.0
    """Seconds a connection may stay silent: before its request starts, or
    between two pieces of it."""
    read_timeout: float = 30.0
    """Seconds a whole request may take to arrive, however it trickles in
    (spamd's --timeout-tcp is 30 s)."""
    max_connections: int = 64
    """Connections served at once by the daemon; more wait in the listen
    queue. With the message size, this bounds the memory held by requests:
    64 x 500 KiB = 32 MiB."""
    max_line_bytes: int = 8192
    """A protocol line (request line, header) longer than this is an error."""
    max_header_lines: int = 255
    """Protocol headers per request, as spamd allows."""
    explain_top: int = DEFAULT_EXPLAIN_TOP
    shutdown_timeout: float = 30.0
    """Seconds given to requests in flight when the daemon is told to stop."""

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_connections", "max_line_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("idle_timeout", "read_timeout", "shutdown_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.max_header_lines < 0 or self.explain_top < 0:
            raise ValueError("max_header_lines and explain_top must not be negative")


@dataclass(frozen=True)
class ScanSettings:
    """How messages are judged and marked: the cut-offs (None: the model's
    own), the header fields `spamcli filter` adds, and when to reject."""

    model_dir: Path
    spam_cutoff: float | None = None
    ham_cutoff: float | None = None
    header_prefix: str = "X-Spam-"
    subject_tag: str | None = None
    reject_above: float | None = None
    """A spam probability at or above which an MTA should reject (milter,
    the HTTP action); None: never."""
    allow_learning: bool = False
    """spamd TELL and HTTP /learnspam, /learnham change the model folder
    only when this is on (spamd's --allow-tell)."""

    def __post_init__(self) -> None:
        from spamcli.filtering import check_header_prefix, check_subject_tag

        check_header_prefix(self.header_prefix)
        if self.subject_tag is not None:
            check_subject_tag(self.subject_tag)
        if self.reject_above is not None and not 0.0 < self.reject_above <= 1.0:
            raise ValueError(f"reject_above must be in (0, 1], not {self.reject_above}")


@dataclass(frozen=True)
class LoadedModel:
    """A scorer with the cut-offs to judge by; replaced whole on reload."""

    scorer: Scorer
    cutoffs: Cutoffs
    name: str
    version: str
    identity: tuple[int, int, int] | None

    @property
    def description(self) -> str:
        return f"{self.name} ({self.version})" if self.version else self.name


@dataclass(frozen=True)
class TokenEffect:
    """An n-gram of an explanation: its effect on the spam probability
    (score minus the score without it) and the same in points."""

    token: str
    effect: float
    points: float


@dataclass(frozen=True)
class ScanResult:
    """One message's verdict, as every protocol renders it."""

    scanned: bool
    """False: answered without a score (too large); label and probability are None."""
    label: str | None
    spam_probability: float | None
    points: float
    """On the points scale (see the module's doc); 0.0 when unscanned, as spamd gives."""
    model: str
    model_version: str
    size: int
    spam_cutoff: float | None = None
    ham_cutoff: float | None = None
    required_points: float = REQUIRED_POINTS
    reject: bool = False
    """The probability reached ScanSettings.reject_above."""
    reject_points: float | None = None
    """ScanSettings.reject_above on the points scale, if set."""
    fields: tuple[tuple[str, str], ...] = ()
    """The verdict header fields `spamcli filter` adds, (name, value), in order."""
    effects: tuple[TokenEffect, ...] = ()
    marked: FilteredMessage | None = None
    """The message marked as `spamcli filter` marks it, when asked for."""
    reason: str = ""
    """Why it was not scanned."""

    @property
    def is_spam(self) -> bool:
        return self.label == SPAM

    @property
    def verdict(self) -> str:
        return self.label or UNSCANNED

    def shown_points(self, decimals: int = 1) -> str:
        """The points as text, never rounded up to the required score when
        the message is not spam (SpamAssassin's rule)."""
        shown = f"{self.points:.{decimals}f}"
        if self.is_spam or float(shown) < self.required_points:
            return shown
        return f"{self.required_points - 10.0**-decimals:.{decimals}f}"


@dataclass(frozen=True)
class LearnResult:
    label: str | None
    """spam or ham; None for a forget."""
    outcome: str
    """added, relabelled, unchanged, forgotten or not learned (see learning.Correction)."""
    changed: bool
    """The model folder was rewritten (and the daemon now scores with it)."""


class LearningDisabled(ServeError):
    """Learning was asked for, but the daemon was not started with it."""


def points_for(probability: float, spam_cutoff: float) -> float:
    """A spam probability on the points scale (see the module's doc)."""
    return REQUIRED_POINTS + _log2_odds(probability) - _log2_odds(spam_cutoff)


def _log2_odds(probability: float) -> float:
    clamped = min(max(probability, PROBABILITY_CLAMP), 1.0 - PROBABILITY_CLAMP)
    return math.log2(clamped / (1.0 - clamped))


def stderr_line(line: str) -> None:
    """Write one line to stderr in one write, so that the lines of several
    processes never interleave (a pipe keeps writes of up to 4 KiB whole)."""
    _write_stderr(_line_bytes(line))


def _line_bytes(line: str) -> bytes:
    return (line.rstrip("\n") + "\n").encode("utf-8", "replace")


def _write_stderr(data: bytes) -> None:
    with contextlib.suppress(OSError):
        os.write(2, data)


# A worker's log lines are held this long at most, then written together:
# one write a line took 7 % of a worker's time under bench/serve.py's eight
# clients (py-spy), the largest cost of a request after the scan and the
# answer's own send.
LOG_BATCH_SECONDS = 0.05
# Written at once when this much is held, whatever the time: a flood of
# lines (of refused connections, say) holds no more than this.
LOG_BATCH_MAX_BYTES = 64 * 1024
# A pipe keeps a write of up to PIPE_BUF bytes (4 KiB on Linux) whole, so
# whole lines are written at most this many bytes at a time: the lines of
# several workers sharing one stderr never interleave, as with stderr_line.
_PIPE_ATOMIC_BYTES = 4096


class BatchedLog:
    """A log of lines for a process with an asyncio event loop: each line
    is held until LOG_BATCH_SECONDS have passed since the first line held
    (or LOG_BATCH_MAX_BYTES are held), then the lines are written whole,
    as few writes of at most 4 KiB as they fit in. Callable from any
    thread; ``flush`` writes what is held at once (call it before the
    process exits)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, write: Callable[[bytes], None] = _write_stderr
    ) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._write = write
        self._lock = threading.Lock()
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def __call__(self, line: str) -> None:
        data = _line_bytes(line)
        with self._lock:
            if self._closed:
                held = [data]
            else:
                self._held.append(data)
                self._held_bytes += len(data)
                if self._held_bytes < LOG_BATCH_MAX_BYTES and (
                    len(self._held) > 1 or self._start_timer()
                ):
                    return
                held = self._take()
        self._write_lines(held)

    def flush(self) -> None:
        with self._lock:
            held = self._take()
        self._write_lines(held)

    def close(self) -> None:
        """Write what is held; lines logged from now on are written at once."""
        with self._lock:
            self._closed = True
            held = self._take()
        self._write_lines(held)

    def _start_timer(self) -> bool:
        """Under the lock, with the first line held: whether a flush is
        now on its way."""
        if threading.get_ident() == self._loop_thread:
            self._timer = self._loop.call_later(LOG_BATCH_SECONDS, self.flush)
            return True
        try:
            self._loop.call_soon_threadsafe(self._start_timer_in_loop)
        except RuntimeError:  # the loop is closed: nothing would ever flush
            self._closed = True
            return False
        return True

    def _start_timer_in_loop(self) -> None:
        with self._lock:
            if self._held and self._timer is None:
                self._timer = self._loop.call_later(LOG_BATCH_SECONDS, self.flush)

    def _take(self) -> list[bytes]:
        held, self._held, self._held_bytes = self._held, [], 0
        if self._timer is not None:
            # A handle is cancelled in its loop's thread only; elsewhere it
            # is left to fire, and flushes what is held by then.
            if threading.get_ident() == self._loop_thread:
                self._timer.cancel()
            self._timer = None
        return held

    def _write_lines(self, lines: list[bytes]) -> None:
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > _PIPE_ATOMIC_BYTES:
                self._write(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self._write(b"".join(chunk))


class ScanService:
    """A loaded model and what the daemon does with it; safe to call from
    several threads (scans are serialised: the scorer is not thread-safe)."""

    def __init__(
        self,
        settings: ScanSettings,
        limits: Limits | None = None,
        stats: Stats | None = None,
        log: Callable[[str], None] = stderr_line,
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        self.stats = stats or Stats()
        self.log = log
        self._scan_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._learn_lock = threading.Lock()
        self._learner: Learner | None = None
        self._learner_identity: tuple[int, int, int] | None = None
        # A folder that failed to load is tried again only once it changes
        # again, or after this long: not on every message.
        self._failed_identity: tuple[int, int, int] | None = None
        self._failed_at = 0.0
        self._model = self._load()
        self.stats.set_model(f"{self._model.name}\t{self._model.version}")

    @property
    def model(self) -> LoadedModel:
        return self._model

    # ----------------------------------------------------------------------
    # The model

    def _load(self) -> LoadedModel:
        from spamcli.filtering import model_name
        from spamcli.scoring import Scorer

        model_dir = self.settings.model_dir
        identity = _folder_identity(model_dir)
        # light=False: every scan is NumPy's (0.12 ms a message against
        # 0.83 ms; see Scorer).
        scorer = Scorer(model_dir, light=False)
        try:
            cutoffs = scorer.cutoffs(spam=self.settings.spam_cutoff, ham=self.settings.ham_cutoff)
        except ValueError as error:
            raise ModelError(f"{model_dir}: {error}") from None
        return LoadedModel(scorer, cutoffs, model_name(model_dir), _model_version(scorer), identity)

    def reload(self) -> LoadedModel:
        """Load the model folder again and serve it from the next request on;
        on failure (ModelError) the old model keeps serving."""
        with self._reload_lock:
            try:
                model = self._load()
            except ModelError as error:
                self._failed_identity = _folder_identity(self.settings.model_dir)
                self._failed_at = time.monotonic()
                self.stats.count("reloads", "failed")
                self.log(
                    f"spamcli serve: model reload failed, still scoring with "
                    f"{self._model.description}: {error}"
                )
                raise
            previous, self._model = self._model, model
            self._failed_identity = None
            self.stats.count("reloads", "ok")
            self.stats.set_model(f"{model.name}\t{model.version}")
            if previous.identity != model.identity or previous.version != model.version:
                self.log(f"spamcli serve: now scoring with {model.description}")
            return model

    def current_model(self) -> LoadedModel:
        """The model to score the next request with, reloaded first if the
        folder was replaced since it was loaded."""
        model = self._model
        identity = _folder_identity(self.settings.model_dir)
        if identity == model.identity or identity is None:
            return model
        if identity == self._failed_identity and time.monotonic() - self._failed_at < 5.0:
            return model
        try:
            return self.reload()
        except ModelError:
            return self._model

    def warm_up(self) -> None:
        """Pay the first-use costs (NumPy's import for explanations, 0.2 s)
        before the first request does."""
        self.scan(b"Subject: warm up\n\nwarm up\n", explain_top=1, mark=True, count=False)

    # ----------------------------------------------------------------------
    # Scanning

    def scan(
        self, raw: bytes, *, explain_top: int = 0, mark: bool = False, count: bool = True
    ) -> ScanResult:
        """The verdict on one message, scored without any verdict fields it
        carries, as `spamcli filter` scores it. A message over the size
        limit is answered unscanned. ``mark``: also the message marked as
        the filter marks it; ``explain_top``: the n-grams that moved the
        score most, that many each way. Raises ModelError if the model
        cannot score (a front end then fails open)."""
        if len(raw) > self.limits.max_message_bytes:
            return self.unscanned(len(raw), count=count)
        from spamcli.explaining import explain_text
        from spamcli.filtering import filter_message, remove_verdict_fields, verdict_fields

        settings = self.settings
        with self._scan_lock:
            model = self.current_model()
            scorer, cutoffs = model.scorer, model.cutoffs
            marked: FilteredMessage | None = None
            if mark:
                marked = filter_message(
                    raw, scorer, cutoffs, settings.header_prefix, settings.subject_tag
                )
                probability = marked.score
                unmarked = (
                    remove_verdict_fields(raw, settings.header_prefix) if explain_top else b""
                )
            else:
                unmarked = remove_verdict_fields(raw, settings.header_prefix)
                probability = scorer.score_messages([unmarked])[0]
            effects: tuple[TokenEffect, ...] = ()
            if explain_top:
                explanation = explain_text(scorer, scorer.message_text(unmarked), explain_top)
                effects = tuple(
                    TokenEffect(
                        effect.token,
                        effect.effect,
                        points_for(probability, cutoffs.spam)
                        - points_for(probability - effect.effect, cutoffs.spam),
                    )
                    for effect in explanation.effects
                )
        label = cutoffs.label(probability)
        points = points_for(probability, cutoffs.spam)
        # The clamp and rounding must never move a message across 5.0.
        if label == SPAM:
            points = max(points, REQUIRED_POINTS)
        else:
            points = min(points, math.nextafter(REQUIRED_POINTS, -math.inf))
        fields = verdict_fields(label, probability, cutoffs, model.name, settings.header_prefix)
        if count:
            self.stats.count("verdicts", label)
        return ScanResult(
            scanned=True,
            label=label,
            spam_probability=probability,
            points=points,
            model=model.name,
            model_version=model.version,
            size=len(raw),
            spam_cutoff=cutoffs.spam,
            ham_cutoff=cutoffs.ham,
            reject=settings.reject_above is not None and probability >= settings.reject_above,
            reject_points=None
            if settings.reject_above is None
            else points_for(settings.reject_above, cutoffs.spam),
            fields=tuple(_split_field(text) for text in fields),
            effects=effects,
            marked=marked,
        )

    def unscanned(self, size: int, reason: str = "", count: bool = True) -> ScanResult:
        """The answer for a message that is not scanned: by default, because
        it is larger than the limit (SIZE may be only what was announced)."""
        model = self._model
        if count:
            self.stats.count("verdicts", UNSCANNED)
        return ScanResult(
            scanned=False,
            label=None,
            spam_probability=None,
            points=0.0,
            model=model.name,
            model_version=model.version,
            size=size,
            reason=reason or f"larger than {self.limits.max_message_bytes} bytes",
        )

    # ----------------------------------------------------------------------
    # Learning

    def learn(self, raw: bytes, label: str | None, forget: bool = False) -> LearnResult:
        """Learn one message as spam or ham (or forget it), and score with
        the new model from the next request on. Every learn of the daemon
        comes through here.

        It is what `spamcli learn` does (spamcli.learning.Learner): one
        optimizer step for the message, written to the model folder under
        its lock, so a learn through the daemon and one from the command
        line both take effect; then this process reloads the folder it
        wrote. The Learner stays open between requests while the folder is
        the one it wrote: opened anew for each message, as `spamcli learn`
        opens it, a TELL took 37 ms here (reading every row learned so far),
        against 15 ms (bench/serve.py, 2026-12-03) for one kept open."""
        if not self.settings.allow_learning:
            raise LearningDisabled("learning is not enabled: start spamcli serve with --allow-tell")
        if not forget and label not in (SPAM, HAM):
            raise ValueError(f"a message is learned as spam or ham, not {label!r}")
        from spamcli import artifacts

        with self._learn_lock, artifacts.model_lock(self.settings.model_dir):
            try:
                learner = self._open_learner()
                correction = learner.learn_message(raw, None if forget else label, "daemon")
                changed = learner.changed
                if changed:
                    learner.save()
                    self._learner_identity = _folder_identity(self.settings.model_dir)
            except BaseException:
                # What it holds may now differ from the folder: read it anew.
                self._learner = None
                raise
            if changed:
                self.reload()
        self.stats.count("learned", correction.outcome)
        return LearnResult(None if forget else label, correction.outcome, changed)

    def _open_learner(self) -> Learner:
        """The open Learner of the model folder, opened anew when the folder
        is not the one it last wrote (another process replaced it)."""
        from spamcli.learning import Learner

        identity = _folder_identity(self.settings.model_dir)
        if self._learner is None or identity is None or identity != self._learner_identity:
            self._learner = Learner(self.settings.model_dir)
            self._learner_identity = identity
        return self._learner

    # ----------------------------------------------------------------------
    # What the front ends report

    def finish(
        self,
        protocol: str,
        command: str,
        seconds: float,
        result: ScanResult | None = None,
        learned: LearnResult | None = None,
        size: int | None = None,
        note: str = "",
    ) -> None:
        """Count one answered request and log its line: the verdict, the
        score, the size and the time, never any of the message's content."""
        self.stats.request(protocol, command, seconds)
        parts = [f"spamcli serve: {protocol} {command}"]
        if result is not None:
            parts.append(f"verdict={result.verdict}")
            if result.scanned:
                parts.append(
                    f"score={result.shown_points()}/{result.required_points:.1f} "
                    f"probability={result.spam_probability:.6f}"
                )
            else:
                parts.append(f'reason="{result.reason}"')
            size = result.size
        if learned is not None:
            parts.append(f"learned={learned.label or 'forget'} outcome={learned.outcome!r}")
        if size is not None:
            parts.append(f"size={size}")
        parts.append(f"time={seconds * 1000:.1f}ms")
        if note:
            parts.append(note)
        self.log(" ".join(parts))

    def protocol_error(self, protocol: str, reason: str, seconds: float) -> None:
        self.stats.count("protocol_errors", protocol)
        self.stats.request(protocol, "other", seconds)
        self.log(f"spamcli serve: {protocol} error: {reason} time={seconds * 1000:.1f}ms")


def _split_field(text: str) -> tuple[str, str]:
    name, _, value = text.partition(":")
    return name, value.strip()


def _folder_identity(model_dir: Path) -> tuple[int, int, int] | None:
    try:
        status = os.stat(model_dir)
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_mtime_ns


def _model_version(scorer: Scorer) -> str:
    """When the model was made, from its metadata, if it says (its shape may change)."""
    metadata: Any = getattr(scorer, "metadata", None)
    if not isinstance(metadata, dict):
        return ""
    for key in ("created", "version", "model_version"):
        value = metadata.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return "".join(character for character in str(value) if character.isprintable())[:80]
    return ""
