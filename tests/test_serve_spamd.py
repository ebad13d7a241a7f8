"""The spamd protocol of `spamcli serve`: the real spamc for every command it
sends, and the protocol's versions and errors byte by byte.

spamc is SpamAssassin's client (Debian package spamc), not a Python
package: without /usr/bin/spamc the spamc tests skip (CI installs it when
it can, see .ci/run). The byte-level tests follow spamd/PROTOCOL and
spamd itself; the REPORT request is the one Exim sends (SPAMC/1.2, User,
Content-length), and its answer is read the way Exim's spam.c reads it.
"""

from __future__ import annotations

import re
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve_support import (
    SPAMC,
    InProcessDaemon,
    parse_answer,
    read_all,
    spamc,
    spamd_exchange,
    spamd_request,
)

from spamcli.filtering import filter_message
from spamcli.scoring import Scorer
from spamcli.server.core import Limits, ScanSettings

# Exim's fallback parse of a REPORT answer (src/src/spam.c): the status
# line, the Spam header, an empty line, then the report.
EXIM_REPORT = re.compile(
    rb"^SPAMD/(\S{1,7}) 0 EX_OK\r\nSpam: \S+ ; (-?[\d.]+) / (-?[\d.]+)\r\n\r\n", re.DOTALL
)
SPAM_HEADER = re.compile(r"^(True|False) ; (-?\d+\.\d) / 5\.0$")


@pytest.fixture(scope="module")
def settings(trained_model_dir: Path) -> ScanSettings:
    return ScanSettings(model_dir=trained_model_dir)


@pytest.fixture(scope="module")
def daemon(settings: ScanSettings) -> Iterator[InProcessDaemon]:
    with InProcessDaemon(settings, http=False) as running:
        yield running


@pytest.fixture(scope="module")
def messages(generate_mail: Callable[[str, int, int], list[bytes]]) -> dict[str, bytes]:
    ham = generate_mail("ham", 1, 31)[0]
    spam = generate_mail("spam", 1, 31)[0]
    return {"ham": ham, "spam": spam}


@pytest.fixture
def needs_spamc() -> None:
    if not SPAMC.exists():
        pytest.skip(f"spamc is not installed ({SPAMC} is missing; apt-get install spamc)")


def spamc_at(daemon: InProcessDaemon, *arguments: str) -> list[str]:
    return ["-d", "127.0.0.1", "-p", str(daemon.spamd_port), "-t", "20", *arguments]


def test_serve_the_model_tells_ham_from_spam(
    daemon: InProcessDaemon, messages: dict[str, bytes]
) -> None:
    # The premise of the tests below: one message of each verdict.
    assert daemon.service.scan(messages["ham"]).label == "ham"
    assert daemon.service.scan(messages["spam"]).label == "spam"


# --------------------------------------------------------------------------
# The real spamc, one command each


@pytest.mark.usefixtures("needs_spamc")
@pytest.mark.parametrize("label", ["ham", "spam"])
def test_serve_spamc_check_prints_the_points_and_exits_with_the_verdict(
    daemon: InProcessDaemon, messages: dict[str, bytes], label: str
) -> None:
    raw = messages[label]
    result = daemon.service.scan(raw)
    completed = spamc(spamc_at(daemon, "-c"), raw)
    assert completed.stdout == f"{result.shown_points()}/5.0\n".encode()
    # spamc -c: 1 for spam, 0 for not spam, from the daemon's "Spam: True/False".
    assert completed.returncode == (1 if label == "spam" else 0)
    assert (float(result.shown_points()) >= 5.0) == (label == "spam")


@pytest.mark.usefixtures("needs_spamc")
def test_serve_spamc_symbols_names_the_verdict(
    daemon: InProcessDaemon, messages: dict[str, bytes]
) -> None:
    assert spamc(spamc_at(daemon, "-y"), messages["spam"]).stdout == b"SPAMCLI_SPAM"
    assert spamc(spamc_at(daemon, "-y"), messages["ham"]).stdout == b"SPAMCLI_HAM"


@pytest.mark.usefixtures("needs_spamc")
def test_serve_spamc_report_lists_points_and_ngrams(
    daemon: InProcessDaemon, messages: dict[str, bytes]
) -> None:
    result = daemon.service.scan(messages["ham"])
    output = spamc(spamc_at(daemon, "-R"), messages["ham"]).stdout.decode()
    first, _, report = output.partition("\n")
    assert first == f"{result.shown_points()}/5.0"
    assert "has NOT identified this incoming email as spam" in report
    assert f"({result.shown_points()} points, 5.0 required)" in report
    assert "SPAMCLI_HAM" in report
    assert re.search(r'SPAMCLI_TOKEN_(SPAM|HAM) +"[^"]+": [+-]\d+\.\d\d points', report)


@pytest.mark.usefixtures("needs_spamc")
def test_serve_spamc_report_if_spam_reports_spam_only(
    daemon: InProcessDaemon, messages: dict[str, bytes]
) -> None:
    spam = spamc(spamc_at(daemon, "-r"), messages["spam"])
    assert b"has identified this incoming email as spam" in spam.stdout
    assert spamc(spamc_at(daemon, "-r"), messages["ham"]).stdout == b""


@pytest.mark.usefixtures("needs_spamc")
@pytest.mark.parametrize("label", ["ham", "spam"])
def test_serve_spamc_process_marks_the_message_as_filter_does(
    daemon: InProcessDaemon, messages: dict[str, bytes], trained_model_dir: Path, label: str
) -> None:
    raw = messages[label]
    scorer = Scorer(trained_model_dir)
    expected = filter_message(raw, scorer, scorer.cutoffs()).raw
    completed = spamc(spamc_at(daemon, "-E"), raw)
    assert completed.stdout == expected
    assert completed.returncode == (1 if label == "spam" else 0)  # -E: the verdict
    headers_only = spamc(spamc_at(daemon, "--headers"), raw)
    assert headers_only.stdout == expected  # spamc puts the body back


@pytest.mark.usefixtures("needs_spamc")
def test_serve_spamc_ping(daemon: InProcessDaemon) -> None:
    completed = spamc(spamc_at(daemon, "-K"), b"")
    assert completed.stdout == b"SPAMD/1.5 0\n"
    assert completed.returncode == 0


def test_serve_compressed_gets_the_same_answer(
    daemon: InProcessDaemon, messages: dict[str, bytes]
) -> None:
    # spamc -z sends this; Debian's spamc is built without zlib (-z is a
    # usage error there), so the request is made here.
    raw = messages["spam"]
    plain = spamd_exchange(daemon.spamd_port, spamd_request("CHECK", raw))
    compressed = spamd_request("CHECK", zlib.compress(raw), headers=["Compress: zlib"])
    assert spamd_exchange(daemon.spamd_port, compressed) == plain


@pytest.mark.usefixtures("needs_spamc")
def test_serve_spamc_learn_is_refused_without_allow_tell(
    daemon: InProcessDaemon, messages: dict[str, bytes]
) -> None:
    completed = spamc(spamc_at(daemon, "-L", "spam"), messages["ham"])
    assert b"successfully" not in completed.stdout
    assert completed.returncode != 0
    assert any("TELL: learning not enabled" in line for line in daemon.lines)


@pytest.mark.usefixtures("needs_spamc")
def test_serve_spamc_learn_and_forget(model_copy: Path, messages: dict[str, bytes]) -> None:
    raw = messages["ham"]
    with InProcessDaemon(ScanSettings(model_copy, allow_learning=True), http=False) as daemon:
        before = daemon.service.scan(raw).spam_probability
        learned = spamc(spamc_at(daemon, "-L", "spam"), raw)
        assert learned.stdout == b"Message successfully un/learned\n"
        assert learned.returncode == 0
        after = daemon.service.scan(raw).spam_probability
        assert after is not None and before is not None and after > before  # the new model
        again = spamc(spamc_at(daemon, "-L", "spam"), raw)
        assert again.stdout == b"Message was already un/learned\n"
        forgotten = spamc(spamc_at(daemon, "-L", "forget"), raw)
        assert forgotten.stdout == b"Message successfully un/learned\n"
        # The learner's own business how far back forgetting goes; away from spam.
        forgot = daemon.service.scan(raw).spam_probability
        assert forgot is not None and forgot < after


@pytest.mark.usefixtures("needs_spamc")
def test_serve_spamc_fails_open_when_the_daemon_is_down(messages: dict[str, bytes]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    down = ["-d", "127.0.0.1", "-p", port, "--connect-retries=1"]
    raw = messages["spam"]
    passed = spamc(down, raw)
    assert (passed.stdout, passed.returncode) == (raw, 0)  # delivered unchanged
    checked = spamc([*down, "-c"], raw)
    assert (checked.stdout, checked.returncode) == (b"0/0\n", 0)
    # -x -X: no safe fallback, and "unavailable" becomes EX_TEMPFAIL for the MTA.
    strict = spamc([*down, "-x", "-X"], raw)
    assert (strict.stdout, strict.returncode) == (b"", 75)


@pytest.mark.usefixtures("needs_spamc")
def test_serve_spamc_larger_than_the_limit_is_answered_unscanned(
    settings: ScanSettings, messages: dict[str, bytes]
) -> None:
    raw = messages["spam"] + b"padding line\n" * 400
    limits = Limits(max_message_bytes=len(raw) - 1)
    with InProcessDaemon(settings, limits, http=False) as daemon:
        checked = spamc(spamc_at(daemon, "-c"), raw)
        assert (checked.stdout, checked.returncode) == (b"0.0/5.0\n", 0)
        processed = spamc(spamc_at(daemon), raw)
        assert processed.stdout == raw
        assert any('verdict=unscanned reason="larger than' in line for line in daemon.lines)


# --------------------------------------------------------------------------
# The protocol, version by version


def exchange(daemon: InProcessDaemon, request: bytes) -> bytes:
    return spamd_exchange(daemon.spamd_port, request)


def test_serve_check_answer_is_spamd_s(daemon: InProcessDaemon, messages: dict[str, bytes]) -> None:
    for version in ("1.2", "1.5"):
        data = exchange(daemon, spamd_request("CHECK", messages["spam"], version))
        answer = parse_answer(data)
        assert answer.status == "SPAMD/1.1 0 EX_OK"
        assert SPAM_HEADER.match(answer.headers["Spam"]).group(1) == "True"  # type: ignore[union-attr]
        assert data.endswith(b"\r\n\r\n") and answer.body == b""


def test_serve_report_as_exim_sends_it(daemon: InProcessDaemon, messages: dict[str, bytes]) -> None:
    raw = messages["spam"]
    request = f"REPORT SPAMC/1.2\r\nUser: nobody\r\nContent-length: {len(raw)}\r\n\r\n"
    data = exchange(daemon, request.encode() + raw)
    match = EXIM_REPORT.match(data)
    assert match is not None, data[:200]
    score, threshold = float(match.group(2)), float(match.group(3))
    assert threshold == 5.0 and score >= threshold  # Exim's spam condition: score >= threshold
    assert b"Content analysis details" in data[match.end() :]


def test_serve_symbols_line_ending_depends_on_the_version(
    daemon: InProcessDaemon, messages: dict[str, bytes]
) -> None:
    old = parse_answer(exchange(daemon, spamd_request("SYMBOLS", messages["ham"], "1.2")))
    assert old.body == b"SPAMCLI_HAM\r\n" and "Content-length" not in old.headers
    new = parse_answer(exchange(daemon, spamd_request("SYMBOLS", messages["ham"], "1.5")))
    assert new.body == b"SPAMCLI_HAM"
    assert new.headers["Content-length"] == str(len(new.body))


@pytest.mark.parametrize(
    ("version", "status", "headers"),
    [
        ("1.0", "SPAMD/1.0 0 EX_OK", []),
        ("1.2", "SPAMD/1.1 0 EX_OK", ["Content-length"]),
        ("1.5", "SPAMD/1.1 0 EX_OK", ["Content-length", "Spam"]),
    ],
)
def test_serve_process_answer_per_version(
    daemon: InProcessDaemon,
    messages: dict[str, bytes],
    trained_model_dir: Path,
    version: str,
    status: str,
    headers: list[str],
) -> None:
    raw = messages["ham"]
    scorer = Scorer(trained_model_dir)
    marked = filter_message(raw, scorer, scorer.cutoffs()).raw
    # Protocol 1.0 has no headers: the message is everything up to the end.
    request = (
        b"PROCESS SPAMC/1.0\r\n" + raw
        if version == "1.0"
        else spamd_request("PROCESS", raw, version)
    )
    data = exchange(daemon, request)
    if version == "1.0":
        assert data == status.encode() + b"\r\n" + marked
        return
    answer = parse_answer(data)
    assert answer.status == status
    assert sorted(answer.headers) == sorted(headers)
    assert answer.body == marked
    assert int(answer.headers["Content-length"]) == len(marked)


def test_serve_headers_answers_the_header_block(
    daemon: InProcessDaemon, messages: dict[str, bytes], trained_model_dir: Path
) -> None:
    raw = messages["spam"]
    scorer = Scorer(trained_model_dir)
    marked = filter_message(raw, scorer, scorer.cutoffs()).raw
    answer = parse_answer(exchange(daemon, spamd_request("HEADERS", raw)))
    assert answer.body == marked[: marked.index(b"\n\n") + 2]


def test_serve_ping_and_skip(daemon: InProcessDaemon) -> None:
    # Before 1.5 a PING is the line alone; from 1.5 on, headers and an empty line.
    assert spamd_exchange(daemon.spamd_port, b"PING SPAMC/1.2\r\n") == b"SPAMD/1.5 0 PONG\r\n"
    assert exchange(daemon, b"PING SPAMC/1.5\r\n\r\n") == b"SPAMD/1.5 0 PONG\r\n"
    assert exchange(daemon, b"SKIP SPAMC/1.5\r\n\r\n") == b""


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"HELLO SPAMC/1.5\r\n\r\n", "HELLO SPAMC/1.5"),
        (b"\x00\xff\x10garbage\r\n", "\\x00\\xff"),
        (b"CHECK SPAMC/1.5\r\nno colon here\r\n\r\n", "header not in 'Name: value' format"),
        (b"CHECK SPAMC/1.5\r\nContent-length: 12x\r\n\r\n", "non-numeric"),
        (b"CHECK SPAMC/1.5\r\nContent-length: 100\r\n\r\nshort", "Content-Length mismatch"),
        (b"CHECK SPAMC/1.5\r\nUser: a\x01b\r\n\r\n", "control chars"),
        (b"CHECK SPAMC/1.5\r\nCompress: gzip\r\n\r\n", "compression type not supported"),
        (b"CHECK SPAMC/1.5\r\nCompress: zlib\r\nContent-length: 4\r\n\r\nnope", "zlib"),
        (b"CHECK SPAMC/1.5\r\n" + b"X-A: b\r\n" * 300 + b"\r\n", "too many headers"),
        (b"CHECK SPAMC/1.5\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n", "line longer than"),
        (b"CHECK SPAMC/1.5\r\nContent-length: 3\r\n", "EOF during headers"),
        (b"TELL SPAMC/1.5\r\nSet: local\r\nContent-length: 0\r\n\r\n", "invalid class"),
        (
            b"TELL SPAMC/1.5\r\nMessage-class: spam\r\nSet: local\r\nRemove: local\r\n\r\n",
            "Unable to set local and remove local",
        ),
    ],
)
def test_serve_malformed_requests_get_a_protocol_error(
    daemon: InProcessDaemon, request_bytes: bytes, reason: str
) -> None:
    data = exchange(daemon, request_bytes)
    assert data.startswith(b"SPAMD/1.0 76 Bad header line: (")
    assert reason.encode() in data
    assert data.endswith(b")\r\n") and data.count(b"\r\n") == 1
    # The daemon goes on answering.
    assert exchange(daemon, b"PING SPAMC/1.5\r\n\r\n") == b"SPAMD/1.5 0 PONG\r\n"


def test_serve_timeouts(settings: ScanSettings) -> None:
    limits = Limits(idle_timeout=0.3, read_timeout=0.8)
    with InProcessDaemon(settings, limits, http=False) as daemon:
        with socket.create_connection(("127.0.0.1", daemon.spamd_port), timeout=5) as silent:
            started = time.monotonic()
            data = read_all(silent)
            assert data.startswith(b"SPAMD/1.0 79 Timeout: (0.3 second idle timeout")
            assert 0.25 < time.monotonic() - started < 3
        # Headers trickling in, each gap under the idle timeout: the read timeout ends it.
        with socket.create_connection(("127.0.0.1", daemon.spamd_port), timeout=5) as slow:
            slow.sendall(b"CHECK SPAMC/1.5\r\n")
            started = time.monotonic()
            data = b""
            for number in range(20):
                time.sleep(0.15)
                try:
                    slow.sendall(f"X-Slow-{number}: a\r\n".encode())
                except OSError:
                    break
            data = read_all(slow)
            assert data.startswith(b"SPAMD/1.0 79 Timeout: (0.8 second timeout reading the request")
            assert time.monotonic() - started < 4


def test_serve_oversize_messages_are_never_held_whole(
    settings: ScanSettings, messages: dict[str, bytes]
) -> None:
    raw = messages["spam"] + b"filler text for the size limit\n" * 200
    limit = len(raw) // 2
    with InProcessDaemon(settings, Limits(max_message_bytes=limit), http=False) as daemon:
        checked = parse_answer(spamd_exchange(daemon.spamd_port, spamd_request("CHECK", raw)))
        assert checked.headers["Spam"] == "False ; 0.0 / 5.0"
        # Not held whole, so not passed back: spamc passes its own copy on.
        processed = spamd_exchange(daemon.spamd_port, spamd_request("PROCESS", raw))
        assert processed.startswith(b"SPAMD/1.0 65 Data error: (a message larger than")
        headers = parse_answer(spamd_exchange(daemon.spamd_port, spamd_request("HEADERS", raw)))
        assert headers.body == raw[: raw.index(b"\n\n") + 2]
        # Without a Content-length, CHECK still answers; PROCESS cannot pass it back.
        unsized = spamd_request("CHECK", raw, content_length=False)
        assert b"Spam: False ; 0.0 / 5.0" in spamd_exchange(daemon.spamd_port, unsized)
        unsized = spamd_request("PROCESS", raw, content_length=False)
        assert spamd_exchange(daemon.spamd_port, unsized).startswith(b"SPAMD/1.0 65 ")
        # A small zlib stream that inflates past the limit is not inflated whole.
        bomb = zlib.compress(b"\0" * (50 * limit))
        request = spamd_request("CHECK", bomb, headers=["Compress: zlib"])
        assert b"Spam: False ; 0.0 / 5.0" in spamd_exchange(daemon.spamd_port, request)
        assert daemon.stats.value("verdicts", "unscanned") == 6


def test_serve_connection_cap_queues_the_rest(settings: ScanSettings) -> None:
    with InProcessDaemon(settings, Limits(max_connections=2), http=False) as daemon:
        address = ("127.0.0.1", daemon.spamd_port)
        with (
            socket.create_connection(address, timeout=5) as first,
            socket.create_connection(address, timeout=5),
            socket.create_connection(address, timeout=5) as waiting,
        ):
            waiting.sendall(b"PING SPAMC/1.5\r\n\r\n")
            waiting.settimeout(0.4)
            with pytest.raises(TimeoutError):
                waiting.recv(100)  # not accepted while two connections are open
            first.close()
            waiting.settimeout(5)
            assert waiting.recv(100) == b"SPAMD/1.5 0 PONG\r\n"


def test_serve_refuses_clients_not_allowed(settings: ScanSettings) -> None:
    import ipaddress

    allowed = (ipaddress.ip_network("10.0.0.0/8"),)
    with InProcessDaemon(settings, allowed_networks=allowed, http=False) as daemon:
        assert exchange(daemon, b"PING SPAMC/1.5\r\n\r\n") == b""
        assert daemon.stats.value("refused", "not allowed") == 1


def test_serve_logs_one_line_per_message_without_content(
    settings: ScanSettings, messages: dict[str, bytes]
) -> None:
    with InProcessDaemon(settings, http=False) as daemon:
        exchange(daemon, spamd_request("CHECK", messages["spam"]))
        exchange(daemon, spamd_request("PROCESS", messages["ham"]))
    assert len(daemon.lines) == 2
    spam_line, ham_line = daemon.lines
    assert re.fullmatch(
        r"spamcli serve: spamd CHECK verdict=spam score=\d+\.\d/5\.0 probability=[01]\.\d{6} "
        rf"size={len(messages['spam'])} time=\d+\.\dms",
        spam_line,
    )
    assert ham_line.startswith("spamcli serve: spamd PROCESS verdict=ham ")
    subject = re.search(rb"Subject: (.*)", messages["spam"]).group(1).decode()  # type: ignore[union-attr]
    assert subject not in spam_line and "Subject" not in spam_line
