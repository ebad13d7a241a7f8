"""The scanning core of `spamcli serve` and its configuration: the points
scale, the one scan result, reload, the limits, the shared counters, and
the addresses the daemon accepts."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from spamcli.errors import ModelError
from spamcli.filtering import filter_message
from spamcli.scoring import Scorer
from spamcli.server import core, daemon
from spamcli.server.core import (
    REQUIRED_POINTS,
    BatchedLog,
    LearningDisabled,
    Limits,
    ScanResult,
    ScanService,
    ScanSettings,
    points_for,
)
from spamcli.server.stats import Stats, parse_metrics


@pytest.fixture
def service_for(trained_model_dir: Path) -> Callable[..., ScanService]:
    def make(model_dir: Path = trained_model_dir, **options: object) -> ScanService:
        lines: list[str] = []
        limits = options.pop("limits", None)
        service = ScanService(
            ScanSettings(model_dir, **options),  # type: ignore[arg-type]
            limits,  # type: ignore[arg-type]
            log=lines.append,
        )
        service.lines = lines  # type: ignore[attr-defined]
        return service

    return make


# --------------------------------------------------------------------------
# The points scale


@pytest.mark.parametrize("cutoff", [0.01, 0.5, 0.8439, 0.99])
def test_serve_points_put_the_cutoff_at_5_and_a_point_doubles_the_odds(cutoff: float) -> None:
    assert points_for(cutoff, cutoff) == pytest.approx(REQUIRED_POINTS)
    odds = cutoff / (1 - cutoff)
    doubled = 2 * odds / (1 + 2 * odds)
    assert points_for(doubled, cutoff) == pytest.approx(REQUIRED_POINTS + 1)
    assert math.isfinite(points_for(0.0, cutoff)) and math.isfinite(points_for(1.0, cutoff))
    probabilities = [0.0, 1e-6, 0.1, 0.5, 0.9, 1 - 1e-6, 1.0]
    points = [points_for(probability, cutoff) for probability in probabilities]
    assert points == sorted(points)


def result(points: float, label: str | None) -> ScanResult:
    return ScanResult(True, label, 0.5, points, "model", "", 1, 0.5, 0.5)


def test_serve_shown_points_never_round_a_non_spam_up_to_the_required_score() -> None:
    assert result(4.96, "ham").shown_points() == "4.9"
    assert result(4.96, "unsure").shown_points() == "4.9"
    assert result(4.94, "ham").shown_points() == "4.9"
    assert result(5.0, "spam").shown_points() == "5.0"
    assert result(-3.26, "ham").shown_points() == "-3.3"
    assert result(12.35, "spam").shown_points(2) == "12.35"


def test_serve_scan_agrees_with_filter(
    service_for: Callable[..., ScanService],
    trained_model_dir: Path,
    generate_mail: Callable[[str, int, int], list[bytes]],
) -> None:
    service = service_for()
    scorer = Scorer(trained_model_dir)
    for raw in generate_mail("ham", 3, 71) + generate_mail("spam", 3, 71):
        scanned = service.scan(raw, explain_top=3, mark=True)
        filtered = filter_message(raw, scorer, scorer.cutoffs())
        assert scanned.spam_probability == pytest.approx(filtered.score, abs=1e-12)
        assert scanned.label == filtered.label
        assert scanned.is_spam == (scanned.points >= REQUIRED_POINTS)
        assert scanned.marked is not None and scanned.marked.raw == filtered.raw
        fields = [f"{name}: {value}" for name, value in scanned.fields]
        assert filtered.raw.startswith("\n".join(fields).encode() + b"\n")
        assert 0 < len(scanned.effects) <= 6
        # Scored without the verdict fields it carries, as the filter scores.
        assert service.scan(filtered.raw).spam_probability == pytest.approx(filtered.score)


def test_serve_a_message_over_the_limit_is_unscanned(
    service_for: Callable[..., ScanService],
) -> None:
    service = service_for(limits=Limits(max_message_bytes=100))
    answer = service.scan(b"Subject: x\n\n" + b"a" * 100)
    assert not answer.scanned and answer.label is None and answer.points == 0.0
    assert answer.reason == "larger than 100 bytes"
    assert answer.shown_points() == "0.0" and not answer.is_spam
    assert service.stats.value("verdicts", "unscanned") == 1


# --------------------------------------------------------------------------
# Reload


def test_serve_reload_swaps_the_whole_model(
    service_for: Callable[..., ScanService], trained_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    service = service_for(model_dir)
    first = service.model
    assert service.current_model() is first  # nothing changed: no reload
    # A writer replaces the folder with a rename: the next scan reloads.
    replacement = tmp_path / "replacement"
    shutil.copytree(trained_model_dir, replacement)
    shutil.rmtree(model_dir)
    os.rename(replacement, model_dir)
    service.scan(b"Subject: hello\n\nhello\n")
    assert service.model is not first
    assert service.model.identity != first.identity
    assert any("now scoring with" in line for line in service.lines)  # type: ignore[attr-defined]
    assert service.stats.value("reloads", "ok") == 1


def test_serve_a_model_that_fails_to_load_leaves_the_old_one_serving(
    service_for: Callable[..., ScanService], trained_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    service = service_for(model_dir)
    before = service.scan(b"Subject: hello\n\nhello\n")
    shutil.rmtree(model_dir)
    model_dir.mkdir()  # an empty folder: no model
    with pytest.raises(ModelError):
        service.reload()
    after = service.scan(b"Subject: hello\n\nhello\n")
    assert after.spam_probability == before.spam_probability
    assert any("model reload failed" in line for line in service.lines)  # type: ignore[attr-defined]
    assert service.stats.value("reloads", "failed") >= 1


def test_serve_learning_is_off_unless_allowed(service_for: Callable[..., ScanService]) -> None:
    with pytest.raises(LearningDisabled, match="--allow-tell"):
        service_for().learn(b"Subject: x\n\nx\n", "spam")


def test_serve_learning_keeps_its_learner_open_and_sees_other_learns(
    service_for: Callable[..., ScanService],
    model_copy: Path,
    generate_mail: Callable[[str, int, int], list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spamcli import learning
    from spamcli.corpus import RawMessage

    opened: list[Path] = []
    original_init = learning.Learner.__init__

    def counting_init(learner: learning.Learner, *arguments: object, **options: object) -> None:
        opened.append(Path(arguments[0]))  # type: ignore[arg-type]
        original_init(learner, *arguments, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(learning.Learner, "__init__", counting_init)
    first, second, third, fourth = generate_mail("spam", 4, 95)
    service = service_for(model_copy, allow_learning=True)

    assert service.learn(first, "spam").outcome == "added"
    assert service.learn(second, "spam").outcome == "added"
    assert len(opened) == 1  # the folder was the one it wrote
    # Another process (spamcli learn) replaces the folder in between: the
    # daemon's next learn reads it anew and keeps both.
    learning.learn(model_copy, ham=[RawMessage("cli", third)])
    assert service.learn(fourth, "spam").outcome == "added"
    assert len(opened) == 3  # the command's own learn, then the daemon anew
    labels = {record.label for record in learning.read_learned(model_copy).values()}
    assert len(learning.read_learned(model_copy)) == 4 and labels == {"spam", "ham"}
    assert service.learn(fourth, "spam").outcome == "unchanged"
    # It scores with what it learned.
    assert service.current_model().scorer.score_messages([fourth]) == Scorer(
        model_copy
    ).score_messages([fourth])


def test_serve_settings_and_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="header prefix"):
        ScanSettings(Path("m"), header_prefix="Bad Prefix:")
    with pytest.raises(ValueError, match="reject_above"):
        ScanSettings(Path("m"), reject_above=0.0)
    with pytest.raises(ValueError, match="max_connections"):
        Limits(max_connections=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        Limits(idle_timeout=0)


# --------------------------------------------------------------------------
# Counters shared by the processes


def test_serve_stats_add_up_every_slot() -> None:
    stats = Stats(3)
    for slot in range(3):
        stats.use_slot(slot)
        stats.request("spamd", "CHECK", 0.002)
        stats.request("spamd", "NO_SUCH_COMMAND", 0.2)
        stats.count("verdicts", "spam")
        stats.set_model(f"model\tversion {slot}")
    assert stats.value("requests", "spamd", "CHECK") == 3
    assert stats.value("requests", "spamd", "other") == 3
    assert stats.duration_sum("spamd") == pytest.approx(3 * 0.202)
    samples = {
        (name, tuple(sorted(labels.items()))): value
        for name, labels, value in parse_metrics(stats.render())
    }
    assert samples[("spamcli_verdicts_total", (("verdict", "spam"),))] == 3
    bucket = (
        "spamcli_request_duration_seconds_bucket",
        (("le", "0.0025"), ("protocol", "spamd")),
    )
    assert samples[bucket] == 3
    infinity = ("spamcli_request_duration_seconds_bucket", (("le", "+Inf"), ("protocol", "spamd")))
    assert samples[infinity] == 6
    models = [labels for name, labels in samples if name == "spamcli_model_info"]
    assert len(models) == 3
    stats.release_slot(1)
    assert [slot for slot, _text in stats.models()] == [0, 2]


# --------------------------------------------------------------------------
# The log


def test_serve_batched_log_writes_whole_lines_together_and_at_once_when_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(core, "LOG_BATCH_SECONDS", 0.05)
    writes: list[bytes] = []

    async def run() -> None:
        log = BatchedLog(asyncio.get_running_loop(), writes.append)
        for number in range(100):
            log(f"line {number:03d} " + "x" * 90)
        # A line from another thread joins the batch; the loop's timer writes it.
        thread = threading.Thread(target=log, args=("from a thread",))
        thread.start()
        thread.join()
        assert writes == []  # held
        await asyncio.sleep(0.2)
        assert all(len(write) <= 4096 and write.endswith(b"\n") for write in writes)
        assert len(writes) == 3  # 100 lines of 100 bytes, and one more
        lines = b"".join(writes).decode().splitlines()
        assert lines == [f"line {number:03d} " + "x" * 90 for number in range(100)] + [
            "from a thread"
        ]
        writes.clear()
        log("held until closed\n")
        log.close()
        assert writes == [b"held until closed\n"]
        log("after the close")
        assert writes[-1] == b"after the close\n"

    asyncio.run(run())


def test_serve_batched_log_holds_no_more_than_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "LOG_BATCH_SECONDS", 3600.0)
    writes: list[bytes] = []

    async def run() -> None:
        log = BatchedLog(asyncio.get_running_loop(), writes.append)
        line = "y" * 999
        for _ in range(core.LOG_BATCH_MAX_BYTES // 1000 + 1):
            log(line)
        # Written the moment the bound is reached, an hour before the timer.
        assert sum(len(write) for write in writes) >= core.LOG_BATCH_MAX_BYTES
        assert all(len(write) <= 4096 for write in writes)
        log.close()

    asyncio.run(run())


def test_serve_batched_log_of_a_closed_loop_writes_at_once() -> None:
    writes: list[bytes] = []
    loop = asyncio.new_event_loop()
    log = BatchedLog(loop, writes.append)
    loop.close()
    thread = threading.Thread(target=log, args=("nothing would flush this",))
    thread.start()
    thread.join()
    assert writes == [b"nothing would flush this\n"]


# --------------------------------------------------------------------------
# Addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:783", ("127.0.0.1", 783)),
        ("localhost:1", ("127.0.0.1", 1)),
        (":11333", ("127.0.0.1", 11333)),
        ("[::1]:783", ("::1", 783)),
        ("10.1.2.3", ("10.1.2.3", 783)),
    ],
)
def test_serve_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert daemon.parse_address(text, 783) == expected


@pytest.mark.parametrize("text", ["mail.example.org:783", "127.0.0.1:99999", "[::1", "1.2.3.4:x"])
def test_serve_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        daemon.parse_address(text, 783)


def test_serve_parse_milter() -> None:
    assert daemon.parse_milter("inet:11332@127.0.0.1") == "inet:11332@127.0.0.1"
    assert daemon.parse_milter("inet:11332") == "inet:11332@127.0.0.1"
    assert daemon.parse_milter("inet6:11332@::1") == "inet6:11332@::1"
    assert daemon.parse_milter("unix:/run/spamcli/milter.sock") == "unix:/run/spamcli/milter.sock"
    for bad in ("inet:0@127.0.0.1", "unix:relative.sock", "tcp:1@127.0.0.1", "inet:1@::1"):
        with pytest.raises(ValueError):
            daemon.parse_milter(bad)


def test_serve_allowed_ips_read_as_spamd_reads_them() -> None:
    networks = daemon.parse_allowed_ips(["10.,192.168.1.0/24", "[2001:db8::]/32", "::1"])
    assert networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
        ipaddress.ip_network("::1/128"),
    )
    for bad in (["mail.example.org"], ["1.2.3.4.5."], [""]):
        with pytest.raises(ValueError):
            daemon.parse_allowed_ips(bad)
