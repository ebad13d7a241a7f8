"""The daemon's counters, shared by its worker processes, in Prometheus' text format.

A scrape of ``GET /metrics`` lands on one worker, but must count the
requests of all of them (and of the milter process), or a counter would
seem to go backwards from one scrape to the next. So the counters live in
one anonymous shared memory map, made before the workers are forked: each
process writes only its own slot, and a scrape adds the slots up. A slot
is written by one process, under a lock for its threads (the milter's
sessions are threads), and an aligned 8-byte store is never torn on the
64-bit machines this runs on, so a reader needs no lock.

Everything counted is listed here, in one fixed catalogue: the layout of
the map is decided before the fork and must be the same in every process.
Nothing here knows a protocol; the catalogue's names are plain strings.
"""

from __future__ import annotations

import math
import mmap
import struct
import threading
from collections.abc import Iterable, Sequence

SPAMD_COMMANDS = (
    "CHECK",
    "SYMBOLS",
    "REPORT",
    "REPORT_IFSPAM",
    "PROCESS",
    "HEADERS",
    "PING",
    "SKIP",
    "TELL",
)
HTTP_COMMANDS = ("checkv2", "learnspam", "learnham", "ping", "metrics")
MILTER_COMMANDS = ("message",)
COMMANDS: dict[str, tuple[str, ...]] = {
    "spamd": SPAMD_COMMANDS,
    "http": HTTP_COMMANDS,
    "milter": MILTER_COMMANDS,
}
PROTOCOLS = tuple(COMMANDS)
# A request the catalogue does not name (an unknown command) is counted as this.
OTHER_COMMAND = "other"
VERDICTS = ("ham", "unsure", "spam", "unscanned")
LEARN_OUTCOMES = ("added", "relabelled", "unchanged", "forgotten", "not learned")
REFUSALS = ("not allowed", "over capacity")
RELOAD_RESULTS = ("ok", "failed")
# Request durations, in seconds: an ordinary message takes about a
# millisecond end to end, a 500 KiB one some 50 ms.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Bytes kept for the description of the model a slot's process scores with.
MODEL_TEXT_BYTES = 256
_INTEGER = struct.calcsize("q")


def _integer_keys() -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []
    for protocol, commands in COMMANDS.items():
        keys += [("requests", protocol, command) for command in (*commands, OTHER_COMMAND)]
        keys.append(("protocol_errors", protocol))
        keys += [("bucket", protocol, str(index)) for index in range(len(DURATION_BUCKETS) + 1)]
        keys.append(("observations", protocol))
    keys += [("verdicts", verdict) for verdict in VERDICTS]
    keys += [("learned", outcome) for outcome in LEARN_OUTCOMES]
    keys += [("refused", reason) for reason in REFUSALS]
    keys += [("reloads", result) for result in RELOAD_RESULTS]
    keys += [("open_connections",), ("alive",)]
    return keys


class Stats:
    """Counters for ``slots`` processes; each process calls ``use_slot``
    with its own number after the fork (slot 0 until then)."""

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, not {slots}")
        self.slots = slots
        self._keys = _integer_keys()
        self._index = {key: position for position, key in enumerate(self._keys)}
        self._sum_index = {protocol: position for position, protocol in enumerate(PROTOCOLS)}
        integers = len(self._keys) * _INTEGER
        floats = len(PROTOCOLS) * struct.calcsize("d")
        self._slot_bytes = integers + floats + MODEL_TEXT_BYTES
        self._integers_bytes = integers
        self._floats_bytes = floats
        # An anonymous map is shared with the processes forked after it.
        self._map = mmap.mmap(-1, self._slot_bytes * slots)
        self._slot = 0
        self._lock = threading.Lock()

    def use_slot(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise ValueError(f"slot {slot} is not in 0..{self.slots - 1}")
        self._slot = slot
        self._lock = threading.Lock()
        with self._lock:
            self._integers(slot)[self._index[("alive",)]] = 1

    def release_slot(self, slot: int) -> None:
        """Mark a slot's process gone (its counters stay: they were counted)."""
        integers = self._integers(slot)
        integers[self._index[("alive",)]] = 0
        integers[self._index[("open_connections",)]] = 0

    # ----------------------------------------------------------------------
    # Writing, each into this process's own slot

    def request(self, protocol: str, command: str, seconds: float) -> None:
        key = ("requests", protocol, command)
        if key not in self._index:
            key = ("requests", protocol, OTHER_COMMAND)
        bucket = next(
            (index for index, bound in enumerate(DURATION_BUCKETS) if seconds <= bound),
            len(DURATION_BUCKETS),
        )
        with self._lock:
            integers = self._integers(self._slot)
            integers[self._index[key]] += 1
            integers[self._index[("bucket", protocol, str(bucket))]] += 1
            integers[self._index[("observations", protocol)]] += 1
            sums = self._floats(self._slot)
            sums[self._sum_index[protocol]] += seconds

    def count(self, *key: str, amount: int = 1) -> None:
        """Add to a counter of the catalogue: ("verdicts", "spam"),
        ("protocol_errors", "spamd"), ("learned", "added"), ("refused",
        "not allowed"), ("reloads", "ok"), or the gauge ("open_connections",)."""
        with self._lock:
            self._integers(self._slot)[self._index[key]] += amount

    def set_model(self, text: str) -> None:
        encoded = text.encode("utf-8", "replace")[:MODEL_TEXT_BYTES]
        start = self._slot * self._slot_bytes + self._integers_bytes + self._floats_bytes
        with self._lock:
            self._map[start : start + MODEL_TEXT_BYTES] = encoded.ljust(MODEL_TEXT_BYTES, b"\0")
            # A process that scores with a model is alive.
            self._integers(self._slot)[self._index[("alive",)]] = 1

    # ----------------------------------------------------------------------
    # Reading, over all the slots

    def value(self, *key: str) -> int:
        position = self._index[key]
        return sum(self._integers(slot)[position] for slot in range(self.slots))

    def duration_sum(self, protocol: str) -> float:
        position = self._sum_index[protocol]
        return math.fsum(self._floats(slot)[position] for slot in range(self.slots))

    def models(self) -> list[tuple[int, str]]:
        """(slot, model text) of each live process."""
        found = []
        alive = self._index[("alive",)]
        for slot in range(self.slots):
            if not self._integers(slot)[alive]:
                continue
            start = slot * self._slot_bytes + self._integers_bytes + self._floats_bytes
            raw = bytes(self._map[start : start + MODEL_TEXT_BYTES]).rstrip(b"\0")
            found.append((slot, raw.decode("utf-8", "replace")))
        return found

    def render(self) -> str:
        """Every counter in Prometheus' text exposition format (version 0.0.4)."""
        lines: list[str] = []

        def family(name: str, kind: str, text: str) -> None:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        def counter(name: str, text: str, key: str, label: str, values: Sequence[str]) -> None:
            """A counter family of one label, a line for each of VALUES."""
            family(name, "counter", text)
            for value in values:
                lines.append(f"{name}{_labels(**{label: value})} {self.value(key, value)}")

        family("spamcli_requests_total", "counter", "Requests answered, by protocol and command.")
        for protocol, commands in COMMANDS.items():
            for command in (*commands, OTHER_COMMAND):
                count = self.value("requests", protocol, command)
                labels = _labels(protocol=protocol, command=command)
                lines.append(f"spamcli_requests_total{labels} {count}")
        counter(
            "spamcli_protocol_errors_total",
            "Requests answered with a protocol error (malformed, too slow, refused).",
            "protocol_errors",
            "protocol",
            PROTOCOLS,
        )
        family(
            "spamcli_request_duration_seconds",
            "histogram",
            "Time from a request's first byte to its answer, by protocol.",
        )
        for protocol in PROTOCOLS:
            cumulative = 0
            for index, bound in enumerate((*DURATION_BUCKETS, math.inf)):
                cumulative += self.value("bucket", protocol, str(index))
                le = "+Inf" if math.isinf(bound) else repr(bound)
                lines.append(
                    f"spamcli_request_duration_seconds_bucket{_labels(protocol=protocol, le=le)} "
                    f"{cumulative}"
                )
            lines.append(
                f"spamcli_request_duration_seconds_sum{_labels(protocol=protocol)} "
                f"{self.duration_sum(protocol)!r}"
            )
            lines.append(
                f"spamcli_request_duration_seconds_count{_labels(protocol=protocol)} "
                f"{self.value('observations', protocol)}"
            )
        counter(
            "spamcli_verdicts_total",
            "Messages scanned, by verdict; unscanned: answered without a score (too large).",
            "verdicts",
            "verdict",
            VERDICTS,
        )
        counter(
            "spamcli_learned_total",
            "Messages given to learn or forget, by outcome.",
            "learned",
            "outcome",
            LEARN_OUTCOMES,
        )
        counter(
            "spamcli_connections_refused_total",
            "Connections closed unanswered.",
            "refused",
            "reason",
            REFUSALS,
        )
        counter(
            "spamcli_model_reloads_total",
            "Model reloads, by result.",
            "reloads",
            "result",
            RELOAD_RESULTS,
        )
        family("spamcli_open_connections", "gauge", "Connections being served now.")
        lines.append(f"spamcli_open_connections {self.value('open_connections')}")
        family(
            "spamcli_model_info",
            "gauge",
            "The model each worker process scores with (1 per live worker).",
        )
        for slot, text in self.models():
            model, _, version = text.partition("\t")
            labels = _labels(worker=str(slot), model=model, version=version)
            lines.append(f"spamcli_model_info{labels} 1")
        return "\n".join(lines) + "\n"

    # ----------------------------------------------------------------------

    def _integers(self, slot: int) -> memoryview[int]:
        start = slot * self._slot_bytes
        return memoryview(self._map)[start : start + self._integers_bytes].cast("q")

    def _floats(self, slot: int) -> memoryview[float]:
        start = slot * self._slot_bytes + self._integers_bytes
        return memoryview(self._map)[start : start + self._floats_bytes].cast("d")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parse_metrics(text: str) -> Iterable[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each sample line of a Prometheus text page;
    for tests and the benchmark, which read what the daemon serves."""
    import re

    sample = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
    label = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = sample.match(line)
        if match is None:
            raise ValueError(f"not a sample line: {line!r}")
        labels = {name: value for name, value in label.findall(match.group(2) or "")}
        yield match.group(1), labels, float(match.group(3))
