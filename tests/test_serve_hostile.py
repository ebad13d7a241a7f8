"""Hostile input through the daemon: every message of
tests/hostile_catalogue.py through the spamd protocol and HTTP, and
property tests of arbitrary requests and broken mail. The daemon answers
each with a well-formed answer in bounded time (the size limit, 500 KiB,
keeps the 50 MiB messages from ever being held whole) and goes on
answering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_catalogue import HOSTILE_MESSAGES, HostileMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mail_strategies import hostile_mail, mutated_messages
from serve_support import (
    InProcessDaemon,
    http_request,
    needs_serve_extra,
    parse_answer,
    spamd_exchange,
    spamd_request,
)

from spamcli.server.core import Limits, ScanSettings

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
# Every answer the daemon may give to anything at all.
ANSWER = re.compile(
    rb"\A(?:"
    rb"|SPAMD/1\.5 0 PONG\r\n"
    rb"|SPAMD/1\.[01] 0 EX_OK\r\n.*"
    rb"|SPAMD/1\.0 (?:65|69|76|79) [^\r\n]*\r\n"
    rb")\Z",
    re.DOTALL,
)
PONG = b"SPAMD/1.5 0 PONG\r\n"


@pytest.fixture(scope="module")
def daemon(trained_model_dir: Path) -> Iterator[InProcessDaemon]:
    needs_serve_extra("aiohttp")
    limits = Limits(idle_timeout=2.0, read_timeout=10.0)
    with InProcessDaemon(ScanSettings(trained_model_dir), limits) as running:
        yield running


@pytest.mark.parametrize("message", HOSTILE_MESSAGES, ids=lambda message: message.name)
def test_serve_hostile_message_is_answered(
    daemon: InProcessDaemon, message: HostileMessage
) -> None:
    raw = message.build()
    limit = daemon.limits.max_message_bytes
    checked = parse_answer(spamd_exchange(daemon.spamd_port, spamd_request("CHECK", raw)))
    assert checked.status == "SPAMD/1.1 0 EX_OK"
    if len(raw) > limit:
        assert checked.headers["Spam"] == "False ; 0.0 / 5.0"
    else:
        result = daemon.service.scan(raw)
        spam = "True" if result.is_spam else "False"
        assert checked.headers["Spam"] == f"{spam} ; {result.shown_points()} / 5.0"
    processed = spamd_exchange(daemon.spamd_port, spamd_request("PROCESS", raw))
    if len(raw) > limit:
        assert processed.startswith(b"SPAMD/1.0 65 Data error: ")  # spamc passes it on
    else:
        marked = daemon.service.scan(raw, mark=True).marked
        assert marked is not None and parse_answer(processed).body == marked.raw
    status, _headers, body = http_request(daemon.http_port, "POST", "/checkv2", raw)
    assert status == 200
    assert json.loads(body)["is_skipped"] is (len(raw) > limit)
    assert spamd_exchange(daemon.spamd_port, b"PING SPAMC/1.5\r\n\r\n") == PONG


@PROPERTY_SETTINGS
@given(request=st.binary(max_size=2048))
def test_serve_any_bytes_get_a_well_formed_answer(daemon: InProcessDaemon, request: bytes) -> None:
    assert ANSWER.match(spamd_exchange(daemon.spamd_port, request))


@PROPERTY_SETTINGS
@given(
    command=st.sampled_from(["CHECK", "SYMBOLS", "REPORT", "PROCESS", "HEADERS", "PING", "SKIP"]),
    version=st.sampled_from(["1.0", "1.2", "1.3", "1.5", "9", "x"]),
    headers=st.lists(
        st.tuples(
            st.sampled_from(["Content-length", "User", "Compress", "X-Other", "content-LENGTH"]),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
        ),
        max_size=4,
    ),
    body=st.binary(max_size=512),
)
def test_serve_odd_requests_get_a_well_formed_answer(
    daemon: InProcessDaemon, command: str, version: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    lines = [f"{name}: {value}" for name, value in headers]
    request = spamd_request(command, body, version, lines, content_length=False)
    assert ANSWER.match(spamd_exchange(daemon.spamd_port, request))


@PROPERTY_SETTINGS
@given(raw=st.one_of(hostile_mail(), mutated_messages()))
def test_serve_broken_mail_is_scored_as_the_core_scores_it(
    daemon: InProcessDaemon, raw: bytes
) -> None:
    result = daemon.service.scan(raw)
    checked = parse_answer(spamd_exchange(daemon.spamd_port, spamd_request("CHECK", raw)))
    spam = "True" if result.is_spam else "False"
    assert checked.headers["Spam"] == f"{spam} ; {result.shown_points()} / 5.0"
    marked = daemon.service.scan(raw, mark=True).marked
    processed = parse_answer(spamd_exchange(daemon.spamd_port, spamd_request("PROCESS", raw)))
    assert marked is not None and processed.body == marked.raw
