"""The HTTP front end of `spamcli serve`: rspamd's /checkv2 shape, learning,
/ping and /metrics, and the limits, through a real HTTP client."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve_support import (
    InProcessDaemon,
    http_request,
    metric,
    read_all,
    spamd_exchange,
    spamd_request,
)

from spamcli.server.core import Limits, ScanService, ScanSettings
from spamcli.server.stats import parse_metrics

pytest.importorskip("aiohttp", reason="the serve extra (aiohttp) is not installed")


@pytest.fixture(scope="module")
def settings(trained_model_dir: Path) -> ScanSettings:
    return ScanSettings(model_dir=trained_model_dir, reject_above=0.999)


@pytest.fixture(scope="module")
def daemon(settings: ScanSettings) -> Iterator[InProcessDaemon]:
    with InProcessDaemon(settings) as running:
        yield running


@pytest.fixture(scope="module")
def messages(generate_mail: Callable[[str, int, int], list[bytes]]) -> dict[str, bytes]:
    return {"ham": generate_mail("ham", 1, 41)[0], "spam": generate_mail("spam", 1, 41)[0]}


def checkv2(daemon: InProcessDaemon, raw: bytes) -> dict[str, object]:
    status, headers, body = http_request(daemon.http_port, "POST", "/checkv2", raw)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    reply: dict[str, object] = json.loads(body)
    return reply


@pytest.mark.parametrize("label", ["ham", "spam"])
def test_serve_checkv2_answers_in_rspamd_s_shape(
    daemon: InProcessDaemon, messages: dict[str, bytes], label: str
) -> None:
    raw = messages[label]
    result = daemon.service.scan(raw)
    reply = checkv2(daemon, raw)
    assert reply["is_skipped"] is False
    assert reply["score"] == pytest.approx(result.points, abs=1e-4)
    assert reply["required_score"] == 5.0
    assert reply["action"] == ("add header" if label == "spam" else "no action")
    assert reply["label"] == label
    assert reply["spam_probability"] == pytest.approx(result.spam_probability)
    symbols = reply["symbols"]
    assert isinstance(symbols, dict)
    verdict = f"SPAMCLI_{label.upper()}"
    assert symbols[verdict]["name"] == verdict
    # rspamd's score is the sum of its symbols' scores: so it is here.
    assert sum(symbol["score"] for symbol in symbols.values()) == pytest.approx(reply["score"])
    token_options = [
        option
        for name in ("SPAMCLI_TOKENS_SPAM", "SPAMCLI_TOKENS_HAM")
        for option in symbols.get(name, {}).get("options", [])
    ]
    assert token_options and all(": +" in option or ": -" in option for option in token_options)
    assert reply["thresholds"] == {
        "add header": 5.0,
        "reject": pytest.approx(result.reject_points, abs=1e-4),
    }
    milter = reply["milter"]
    assert isinstance(milter, dict)
    assert list(milter["add_headers"]) == ["X-Spam-Flag", "X-Spam-Score", "X-Spam-Status"]
    assert milter["add_headers"]["X-Spam-Flag"]["value"] == ("YES" if label == "spam" else "NO")
    assert milter["remove_headers"] == {"X-Spam-Flag": 0, "X-Spam-Score": 0, "X-Spam-Status": 0}
    assert reply["message-id"].startswith("<")  # type: ignore[union-attr]


def test_serve_checkv2_reject_above(settings: ScanSettings, messages: dict[str, bytes]) -> None:
    probability = ScanService(settings, log=lambda line: None).scan(messages["spam"])
    assert probability.spam_probability is not None
    strict = ScanSettings(settings.model_dir, reject_above=probability.spam_probability)
    with InProcessDaemon(strict) as daemon:
        assert checkv2(daemon, messages["spam"])["action"] == "reject"
        assert checkv2(daemon, messages["ham"])["action"] == "no action"


def test_serve_checkv2_skips_a_message_over_the_limit(
    settings: ScanSettings, messages: dict[str, bytes]
) -> None:
    raw = messages["spam"] * 10
    with InProcessDaemon(settings, Limits(max_message_bytes=len(raw) - 1)) as daemon:
        reply = checkv2(daemon, raw)
        assert reply["is_skipped"] is True
        assert reply["action"] == "no action" and reply["score"] == 0.0
        assert reply["label"] is None
        # Chunked, so that the length is not known up front: read only up to the limit.
        status, _headers, body = http_request(
            daemon.http_port,
            "POST",
            "/checkv2",
            iter([raw[:100], raw[100:]]),  # type: ignore[arg-type]
        )
        assert status == 200 and json.loads(body)["is_skipped"] is True


def test_serve_ping_and_metrics(daemon: InProcessDaemon, messages: dict[str, bytes]) -> None:
    assert http_request(daemon.http_port, "GET", "/ping")[::2] == (200, b"pong\r\n")
    before = http_request(daemon.http_port, "GET", "/metrics")[2].decode()
    checkv2(daemon, messages["spam"])
    spamd_exchange(daemon.spamd_port, spamd_request("CHECK", messages["ham"]))
    status, headers, body = http_request(daemon.http_port, "GET", "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    after = body.decode()
    list(parse_metrics(after))  # every line is a valid sample
    for name, labels in [
        ("spamcli_requests_total", {"protocol": "http", "command": "checkv2"}),
        ("spamcli_requests_total", {"protocol": "spamd", "command": "CHECK"}),
        ("spamcli_verdicts_total", {"verdict": "spam"}),
        ("spamcli_verdicts_total", {"verdict": "ham"}),
        ("spamcli_request_duration_seconds_count", {"protocol": "http"}),
    ]:
        assert metric(after, name, **labels) - metric(before, name, **labels) >= 1, (name, labels)
    assert metric(
        after, "spamcli_request_duration_seconds_bucket", protocol="spamd", le="+Inf"
    ) == (metric(after, "spamcli_request_duration_seconds_count", protocol="spamd"))
    model = daemon.service.model
    assert (
        metric(after, "spamcli_model_info", worker=0, model=model.name, version=model.version) == 1
    )


def test_serve_http_errors_are_counted_not_fatal(daemon: InProcessDaemon) -> None:
    before = daemon.stats.value("protocol_errors", "http")
    assert http_request(daemon.http_port, "GET", "/nothing-here")[0] == 404
    assert http_request(daemon.http_port, "GET", "/checkv2")[0] == 405
    assert daemon.stats.value("protocol_errors", "http") == before + 2
    # Garbage that is no HTTP at all: aiohttp answers 400 and closes.
    with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=5) as connection:
        connection.sendall(b"\x00\x01\x02 not http\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 400 ", read_all(connection))
    assert http_request(daemon.http_port, "GET", "/ping")[0] == 200


def test_serve_http_slow_clients_are_cut_off(settings: ScanSettings) -> None:
    with InProcessDaemon(settings, Limits(idle_timeout=0.3, read_timeout=0.8)) as daemon:
        address = ("127.0.0.1", daemon.http_port)
        with socket.create_connection(address, timeout=5) as silent:
            started = time.monotonic()
            assert read_all(silent) == b""  # closed after the idle timeout
            assert time.monotonic() - started < 3
        with socket.create_connection(address, timeout=5) as slow:
            slow.sendall(b"POST /checkv2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            started = time.monotonic()
            for _ in range(20):
                time.sleep(0.1)
                try:
                    slow.sendall(b"x")
                except OSError:
                    break
            answer = read_all(slow)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
            assert time.monotonic() - started < 4


def test_serve_http_learning_needs_allow_tell(
    daemon: InProcessDaemon, messages: dict[str, bytes]
) -> None:
    status, _headers, body = http_request(daemon.http_port, "POST", "/learnspam", messages["ham"])
    assert status == 403
    assert "--allow-tell" in json.loads(body)["error"]


def test_serve_http_learnspam_then_learnham(model_copy: Path, messages: dict[str, bytes]) -> None:
    raw = messages["ham"]
    with InProcessDaemon(ScanSettings(model_copy, allow_learning=True)) as daemon:
        before = checkv2(daemon, raw)["spam_probability"]
        status, _headers, body = http_request(daemon.http_port, "POST", "/learnspam", raw)
        assert (status, json.loads(body)) == (200, {"success": True, "outcome": "added"})
        assert checkv2(daemon, raw)["spam_probability"] > before  # type: ignore[operator]
        again = http_request(daemon.http_port, "POST", "/learnspam", raw)
        assert again[0] == 208 and json.loads(again[2])["success"] is False
        relabelled = http_request(daemon.http_port, "POST", "/learnham", raw)
        assert json.loads(relabelled[2]) == {"success": True, "outcome": "relabelled"}
