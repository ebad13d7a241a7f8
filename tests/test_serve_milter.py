"""The milter front end of `spamcli serve`, session by session, with a
stand-in for libmilter's context: the header changes it asks for, applied
to the message, give exactly what `spamcli filter` writes; rejection,
failing open and the limits. tests/test_integration_postfix.py runs it
under a real Postfix."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spamcli.filtering import filter_message
from spamcli.scoring import Scorer
from spamcli.server.core import Limits, ScanService, ScanSettings

Milter = pytest.importorskip("Milter", reason="the serve extra (pymilter) is not installed")

from spamcli.server.milter import MilterFrontEnd  # noqa: E402

_FIELD = re.compile(rb"([^:\n]+):[ \t]?((?:[^\n]*)(?:\n[ \t][^\n]*)*)\n")


class FakeContext:
    """What libmilter's context does for a session, recorded."""

    def __init__(self) -> None:
        self.private: Any = None
        self.calls: list[tuple[Any, ...]] = []

    def setpriv(self, private: Any) -> None:
        self.private = private

    def getpriv(self) -> Any:
        return self.private

    def addheader(self, name: str, value: str, index: int) -> None:
        self.calls.append(("add", name, value, index))

    def chgheader(self, name: str, index: int, value: str | None) -> None:
        self.calls.append(("change", name, index, value))

    def setreply(self, *reply: str | None) -> None:
        self.calls.append(("reply", *reply))


def split_message(raw: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    header, _, body = raw.partition(b"\n\n")
    return [(name.decode(), value) for name, value in _FIELD.findall(header + b"\n")], body


def run_session(front: MilterFrontEnd, raw: bytes, protocol: int = 0) -> tuple[int, FakeContext]:
    """One message through one session, as libmilter calls it; the end of
    data's answer and the context."""
    session = front.make_session()
    context = FakeContext()
    session._setctx(context)
    session._protocol = protocol
    assert session.connect("client.example", 2, ("127.0.0.1", 1234)) == Milter.CONTINUE
    session.envfrom("<sender@example.org>")
    fields, body = split_message(raw)
    for name, value in fields:
        session.header(name, value)
    session.eoh()
    for start in range(0, len(body), 65536):
        session.body(body[start : start + 65536])
    answer = session.eom()
    session.close()
    return answer, context


def apply_changes(raw: bytes, calls: list[tuple[Any, ...]]) -> bytes:
    """The message as the MTA writes it after the session's header changes."""
    fields, body = split_message(raw)
    header: list[tuple[str, bytes]] = list(fields)
    for call in calls:
        if call[0] == "change":
            _, name, index, value = call
            positions = [
                at for at, (other, _v) in enumerate(header) if other.lower() == name.lower()
            ]
            at = positions[index - 1]
            if value is None:
                del header[at]
            else:
                header[at] = (header[at][0], value.encode("utf-8", "surrogateescape"))
        elif call[0] == "add":
            _, name, value, index = call
            field = (name, value.encode("utf-8", "surrogateescape"))
            if index < 0:
                header.append(field)
            else:
                header.insert(index, field)
    lines = b"".join(name.encode() + b": " + value + b"\n" for name, value in header)
    return lines + b"\n" + body


@pytest.fixture(scope="module")
def scorer(trained_model_dir: Path) -> Scorer:
    return Scorer(trained_model_dir)


@pytest.fixture
def front_for(trained_model_dir: Path) -> Callable[..., MilterFrontEnd]:
    def make(
        on_error: str = "accept", limits: Limits | None = None, **settings: Any
    ) -> MilterFrontEnd:
        service = ScanService(
            ScanSettings(trained_model_dir, **settings), limits, log=lambda line: None
        )
        return MilterFrontEnd(service, on_error)

    return make


@pytest.mark.parametrize("label", ["ham", "spam"])
@pytest.mark.parametrize("subject_tag", [None, "[SPAM]"])
def test_serve_milter_marks_the_message_as_filter_does(
    front_for: Callable[..., MilterFrontEnd],
    scorer: Scorer,
    generate_mail: Callable[[str, int, int], list[bytes]],
    label: str,
    subject_tag: str | None,
) -> None:
    original = generate_mail(label, 1, 51)[0]
    # A sender's own verdict fields, folded and in any case, are removed.
    raw = b"x-spam-flag: NO\nX-Spam-Status: Yes,\n\tforged\n" + original
    answer, context = run_session(front_for(subject_tag=subject_tag), raw)
    assert answer == Milter.ACCEPT
    expected = filter_message(raw, scorer, scorer.cutoffs(), subject_tag=subject_tag).raw
    assert apply_changes(raw, context.calls) == expected


def test_serve_milter_tags_a_subject_it_adds(
    front_for: Callable[..., MilterFrontEnd],
    scorer: Scorer,
    generate_mail: Callable[[str, int, int], list[bytes]],
) -> None:
    spam = generate_mail("spam", 1, 52)[0]
    raw = re.sub(rb"(?m)^Subject: .*\n", b"", spam)
    _answer, context = run_session(front_for(subject_tag="[SPAM]"), raw)
    expected = filter_message(raw, scorer, scorer.cutoffs(), subject_tag="[SPAM]").raw
    assert apply_changes(raw, context.calls) == expected


def test_serve_milter_rejects_at_the_end_of_data(
    front_for: Callable[..., MilterFrontEnd],
    scorer: Scorer,
    generate_mail: Callable[[str, int, int], list[bytes]],
) -> None:
    spam, ham = generate_mail("spam", 1, 53)[0], generate_mail("ham", 1, 53)[0]
    probability = scorer.score_messages([spam])[0]
    front = front_for(reject_above=probability)
    answer, context = run_session(front, spam)
    assert answer == Milter.REJECT
    (reply,) = [call for call in context.calls if call[0] == "reply"]
    assert reply[1:3] == ("550", "5.7.1")
    assert "rejected as spam" in reply[3]
    assert not [call for call in context.calls if call[0] in ("add", "change")]
    assert run_session(front, ham)[0] == Milter.ACCEPT


@pytest.mark.parametrize(("on_error", "expected"), [("accept", "ACCEPT"), ("tempfail", "TEMPFAIL")])
def test_serve_milter_fails_open_unless_told_to_tempfail(
    front_for: Callable[..., MilterFrontEnd],
    generate_mail: Callable[[str, int, int], list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    on_error: str,
    expected: str,
) -> None:
    front = front_for(on_error=on_error)

    def broken(*arguments: object, **options: object) -> None:
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(front.service, "scan", broken)
    answer, context = run_session(front, generate_mail("spam", 1, 54)[0])
    assert answer == getattr(Milter, expected)
    assert not [call for call in context.calls if call[0] in ("add", "change")]
    replies = [call for call in context.calls if call[0] == "reply"]
    assert replies == ([("reply", "451", "4.7.1", replies[0][3])] if on_error == "tempfail" else [])
    assert front.service.stats.value("protocol_errors", "milter") == 1


def test_serve_milter_accepts_a_large_message_unscanned(
    front_for: Callable[..., MilterFrontEnd],
    generate_mail: Callable[[str, int, int], list[bytes]],
) -> None:
    raw = generate_mail("spam", 1, 55)[0] + b"more text\n" * 20000
    front = front_for(limits=Limits(max_message_bytes=50_000))
    answer, context = run_session(front, raw, protocol=Milter.P_SKIP)
    assert answer == Milter.ACCEPT and context.calls == []
    assert front.service.stats.value("verdicts", "unscanned") == 1


def test_serve_milter_connections_over_the_cap_pass_unscanned(
    front_for: Callable[..., MilterFrontEnd],
) -> None:
    front = front_for(limits=Limits(max_connections=1))
    first, second = front.make_session(), front.make_session()
    for session in (first, second):
        session._setctx(FakeContext())
    assert first.connect("a", 2, ("127.0.0.1", 1)) == Milter.CONTINUE
    assert second.connect("b", 2, ("127.0.0.1", 2)) == Milter.ACCEPT
    second.close()
    first.close()
    assert front.sessions == 0
    assert front.service.stats.value("refused", "over capacity") == 1
