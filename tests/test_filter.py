"""``spamcli filter``: the message passes through byte for byte, with three
header fields added and any fields of those names removed; and whatever
fails, the message still comes out unchanged.

The core is tested with a stand-in scorer that returns a chosen score, so
every verdict can be forced; the command line with the session's trained
model, and the process itself in a subprocess.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from spamcli.artifacts import KERNEL_FILE, METADATA_FILE, WEIGHTS_FILE
from spamcli.cli import EXIT_TEMPFAIL, cli
from spamcli.config import EXIT_ERROR, EXIT_HAM, EXIT_SPAM, EXIT_UNSURE
from spamcli.filtering import filter_message, model_name, remove_verdict_fields
from spamcli.scoring import Cutoffs, Scorer

CUTOFFS = Cutoffs(spam=0.9, ham=0.3)
SPAM_SCORE, UNSURE_SCORE, HAM_SCORE = 0.97, 0.5, 0.05
OUR_NAMES = ("X-Spam-Flag", "X-Spam-Score", "X-Spam-Status")
STATUS_LINE = re.compile(
    r"X-Spam-Status: (Yes|No|Unsure), score=[01]\.\d{4}, spam_cutoff=[01]\.\d{4}, "
    r"ham_cutoff=[01]\.\d{4}, model=[A-Za-z0-9._+-]+"
)


@dataclass
class FixedScorer:
    """Stands in for a Scorer: the same score for every message."""

    score: float
    model_dir: Path = Path("models/test-model")

    def score_messages(self, raws: list[bytes]) -> list[float]:
        self.scored = list(raws)
        return [self.score for _ in raws]


def run_filter(raw: bytes, score: float = HAM_SCORE, **options: object) -> bytes:
    return filter_message(raw, FixedScorer(score), CUTOFFS, **options).raw  # type: ignore[arg-type]


def added_lines(label_score: float, line_ending: bytes, prefix: str = "X-Spam-") -> bytes:
    label = CUTOFFS.label(label_score)
    word = {"spam": "Yes", "ham": "No", "unsure": "Unsure"}[label]
    fields = [
        f"{prefix}Flag: {'YES' if label == 'spam' else 'NO'}",
        f"{prefix}Score: {label_score:.4f}",
        f"{prefix}Status: {word}, score={label_score:.4f}, spam_cutoff=0.9000, "
        "ham_cutoff=0.3000, model=test-model",
    ]
    return b"".join(field.encode() + line_ending for field in fields)


def first_line_ending(raw: bytes) -> bytes:
    newline = raw.find(b"\n")
    return b"\r\n" if newline > 0 and raw[newline - 1 : newline] == b"\r" else b"\n"


# --------------------------------------------------------------------------
# The round trip, as a property over generated messages

# Header field names: printable ASCII but the colon, never one of ours.
field_names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
    min_size=1,
    max_size=20,
).filter(lambda name: name.lower() not in {our.lower() for our in OUR_NAMES})
# Any bytes but LF, 8-bit and invalid UTF-8 included.
line_bytes = st.binary(max_size=40).map(lambda value: value.replace(b"\n", b""))
spaces = st.sampled_from([b"", b" ", b"\t", b"  "])
line_endings = st.sampled_from([b"\n", b"\r\n"])


def random_case(draw: st.DrawFn, name: str) -> bytes:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.swapcase() if f else c for c, f in zip(name, flips, strict=True)).encode()


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """(message, the message without our fields, the lines above our fields).

    The lines above our fields: an envelope line and lines that start with
    white space, if the message starts with them."""
    line_ending = draw(line_endings)
    envelope = b""
    if draw(st.booleans()):
        envelope = b"From sender@example.org  Mon Sep  2 10:00:00 2024" + line_ending
    if draw(st.booleans()):  # leading whitespace on the first header line
        envelope += draw(st.sampled_from([b" ", b"\t"])) + draw(line_bytes) + line_ending
    lines: list[tuple[bytes, bool]] = []  # each line, and whether it is kept
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["field", "ours", "malformed"]))
        if kind == "malformed":  # a line without a colon
            text = draw(line_bytes).replace(b":", b"")
            if text in (b"", b"\r") or text.startswith((b" ", b"\t", b"From ")):
                continue
            lines.append((text + line_ending, True))
            continue
        name = random_case(draw, draw(st.sampled_from(OUR_NAMES)))
        if kind == "field":
            name = draw(field_names).encode()
        # "From :" on the first line would be an envelope line.
        space = b"" if name == b"From" else draw(spaces)
        lines.append((name + space + b":" + draw(line_bytes) + line_ending, kind == "field"))
        for _ in range(draw(st.integers(0, 2))):  # folded continuation lines
            fold = draw(st.sampled_from([b" ", b"\t"])) + draw(line_bytes) + line_ending
            lines.append((fold, kind == "field"))
    body = b""
    if draw(st.booleans()):  # an empty line and a body, which may hold anything
        body = line_ending + draw(st.binary(max_size=200))
        if draw(st.booleans()):
            body += b"\nX-Spam-Flag: YES\n"
    elif lines and draw(st.booleans()):  # no line ending at the end
        last, kept = lines[-1]
        lines[-1] = (last.removesuffix(line_ending), kept)
    raw = envelope + b"".join(line for line, _ in lines) + body
    kept = envelope + b"".join(line for line, keep in lines if keep) + body
    return raw, kept, envelope


@settings(max_examples=400, deadline=None, database=None)
@given(message=messages(), score=st.sampled_from([HAM_SCORE, UNSURE_SCORE, SPAM_SCORE]))
def test_filter_adds_three_lines_and_changes_nothing_else(
    message: tuple[bytes, bytes, bytes], score: float
) -> None:
    raw, kept, envelope = message
    output = run_filter(raw, score)

    added = added_lines(score, first_line_ending(raw))
    assert output == envelope + added + kept[len(envelope) :]
    assert remove_verdict_fields(raw) == kept


@settings(max_examples=200, deadline=None, database=None)
@given(message=messages(), score=st.sampled_from([HAM_SCORE, UNSURE_SCORE, SPAM_SCORE]))
def test_filter_twice_is_filter_once(message: tuple[bytes, bytes, bytes], score: float) -> None:
    once = run_filter(message[0], score, subject_tag="[SPAM]")
    assert run_filter(once, score, subject_tag="[SPAM]") == once


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.binary(max_size=500))
def test_filter_any_bytes_round_trip(raw: bytes) -> None:
    # Whatever the input, the output is the three lines plus the input minus
    # our fields, with the lines after a leading "From " line and any lines
    # starting with white space after it (the last of them given a line
    # ending if it has none); and filtering it again gives it back.
    output = run_filter(raw)

    line_ending = first_line_ending(raw)
    added = added_lines(HAM_SCORE, line_ending)
    assert added in output
    before, after = output.split(added, 1)
    assert before in (b"", raw[: len(before)], raw + line_ending)
    top_lines = re.findall(rb"[^\n]*\n", before)
    if top_lines and top_lines[0].startswith(b"From "):
        top_lines.pop(0)
    assert all(line.startswith((b" ", b"\t")) for line in top_lines)
    assert before + after == remove_verdict_fields(raw)
    assert run_filter(output) == output


# --------------------------------------------------------------------------
# The round trip, case by case


PLAIN = b"From: Alice <alice@example.org>\nSubject: Lunch\n\nSee you at noon.\n"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(PLAIN, b"%s" + PLAIN, id="lf"),
        pytest.param(
            PLAIN.replace(b"\n", b"\r\n"), b"%s" + PLAIN.replace(b"\n", b"\r\n"), id="crlf"
        ),
        pytest.param(b"", b"%s", id="empty"),
        pytest.param(b"Subject: x", b"%sSubject: x", id="one line without a line ending"),
        pytest.param(b"Subject: x\n", b"%sSubject: x\n", id="no body"),
        pytest.param(b"\nbody only\n", b"%s\nbody only\n", id="no header"),
        pytest.param(b"\r\nbody\r\n", b"%s\r\nbody\r\n", id="no header crlf"),
        pytest.param(
            b"Subject: x\n\nlast line without one",
            b"%sSubject: x\n\nlast line without one",
            id="nl",
        ),
        pytest.param(
            b"From bob@example.org Mon Sep  2 10:00:00 2024\nSubject: x\n\nbody\n",
            b"From bob@example.org Mon Sep  2 10:00:00 2024\n%sSubject: x\n\nbody\n",
            id="envelope line stays first",
        ),
        pytest.param(b"From bob", b"%sFrom bob", id="envelope line alone, no line ending"),
        pytest.param(
            b" leading: space\nSubject: x\n\nb\n",
            b" leading: space\n%sSubject: x\n\nb\n",
            id="leading whitespace",
        ),
        pytest.param(
            b"From bob\r\n\tfolded\r\n more\r\nSubject: x\r\n",
            b"From bob\r\n\tfolded\r\n more\r\n%sSubject: x\r\n",
            id="envelope and leading whitespace",
        ),
        # A last line starting with white space is given a line ending, so
        # that the fields go after it instead of folding it into theirs.
        pytest.param(b"\t", b"\t\n%s", id="white space only, no line ending"),
        pytest.param(b" a\n\tb c", b" a\n\tb c\n%s", id="leading whitespace, no line ending"),
        pytest.param(
            b"From bob\r\n x", b"From bob\r\n x\r\n%s", id="envelope, leading whitespace, crlf"
        ),
        pytest.param(
            b"no colon here\nSubject: x\n\nb\n",
            b"%sno colon here\nSubject: x\n\nb\n",
            id="line without a colon",
        ),
        pytest.param(
            b"Subject: caf\xe9 \xff\xfe\r\n\r\n\x80\x81 8-bit\n",
            b"%sSubject: caf\xe9 \xff\xfe\r\n\r\n\x80\x81 8-bit\n",
            id="8-bit and invalid bytes",
        ),
        pytest.param(
            b"Subject: lone\rcarriage return\n\nb\n",
            b"%sSubject: lone\rcarriage return\n\nb\n",
            id="lone carriage return",
        ),
    ],
)
def test_filter_round_trip_cases(raw: bytes, expected: bytes) -> None:
    output = run_filter(raw)
    assert output == expected.replace(b"%s", added_lines(HAM_SCORE, first_line_ending(raw)), 1)
    assert run_filter(output) == output


def test_filter_verdict_fields_for_each_verdict() -> None:
    for score, flag, word in [
        (SPAM_SCORE, "YES", "Yes"),
        (UNSURE_SCORE, "NO", "Unsure"),
        (HAM_SCORE, "NO", "No"),
    ]:
        result = filter_message(PLAIN, FixedScorer(score), CUTOFFS)  # type: ignore[arg-type]
        lines = result.raw.decode().splitlines()
        assert lines[0] == f"X-Spam-Flag: {flag}"
        assert lines[1] == f"X-Spam-Score: {score:.4f}"
        assert STATUS_LINE.fullmatch(lines[2]), lines[2]
        assert lines[2].startswith(f"X-Spam-Status: {word}, score={score:.4f}, ")
        assert result.score == score
        assert result.label == CUTOFFS.label(score)


def test_filter_removes_existing_fields_folded_and_in_any_case() -> None:
    raw = (
        b"X-Spam-Flag: NO\n"
        b"From: spammer@example.com\n"
        b"x-spam-status: No, score=0.01,\n"
        b"\ttests=ALL_TRUSTED\n"
        b"  more=folded\n"
        b"X-SPAM-SCORE : -100\n"
        b"X-Spam-Level: ***\n"
        b"Subject: Free money\n"
        b"x-SpAm-FlAg:NO\n"
        b"\n"
        b"X-Spam-Flag: NO in the body stays\n"
    )
    output = run_filter(raw, SPAM_SCORE)

    assert output == added_lines(SPAM_SCORE, b"\n") + (
        b"From: spammer@example.com\n"
        b"X-Spam-Level: ***\n"
        b"Subject: Free money\n"
        b"\n"
        b"X-Spam-Flag: NO in the body stays\n"
    )


def test_filter_removes_fields_after_a_malformed_line() -> None:
    # procmail and maildrop read every line up to the empty line as header.
    raw = b"Subject: x\nnot a header\nX-Spam-Flag: YES\n\nbody\n"
    assert run_filter(raw) == added_lines(HAM_SCORE, b"\n") + b"Subject: x\nnot a header\n\nbody\n"


def test_filter_scores_the_message_without_our_fields() -> None:
    scorer = FixedScorer(HAM_SCORE)
    filter_message(b"X-Spam-Flag: YES\nSubject: x\n\nbody\n", scorer, CUTOFFS)  # type: ignore[arg-type]
    assert scorer.scored == [b"Subject: x\n\nbody\n"]


# --------------------------------------------------------------------------
# Subject tag and header prefix


@pytest.mark.parametrize(
    ("subject", "tagged"),
    [
        (b"Subject: Free money\n", b"Subject: [SPAM] Free money\n"),
        (b"Subject: [SPAM] Free money\n", b"Subject: [SPAM] Free money\n"),
        (b"subject: [spam] Free money\n", b"subject: [spam] Free money\n"),
        (b"Subject:Free money\r\n", b"Subject: [SPAM] Free money\r\n"),
        (b"Subject:\n", b"Subject: [SPAM]\n"),
        (b"Subject:\n =?utf-8?q?Free?=\n", b"Subject: [SPAM]\n =?utf-8?q?Free?=\n"),
        (b"SUBJECT :\t\xe9t\xe9\n", b"SUBJECT :\t[SPAM] \xe9t\xe9\n"),
    ],
)
def test_filter_subject_tag_on_spam(subject: bytes, tagged: bytes) -> None:
    raw = b"From: a@example.com\n" + subject + b"\nbody\n"
    line_ending = first_line_ending(raw)
    output = run_filter(raw, SPAM_SCORE, subject_tag="[SPAM]")

    assert output == added_lines(SPAM_SCORE, line_ending) + (
        b"From: a@example.com\n" + tagged + b"\nbody\n"
    )


def test_filter_subject_tag_only_the_first_subject() -> None:
    raw = b"Subject: one\nSubject: two\n\n"
    output = run_filter(raw, SPAM_SCORE, subject_tag="[SPAM]")
    assert output.endswith(b"Subject: [SPAM] one\nSubject: two\n\n")


def test_filter_subject_tag_adds_a_subject_to_spam_without_one() -> None:
    raw = b"From: a@example.com\r\n\r\nbody\r\n"
    output = run_filter(raw, SPAM_SCORE, subject_tag="[SPAM]")
    assert output == added_lines(SPAM_SCORE, b"\r\n") + b"Subject: [SPAM]\r\n" + raw


@pytest.mark.parametrize("score", [HAM_SCORE, UNSURE_SCORE])
def test_filter_subject_tag_leaves_ham_and_unsure_alone(score: float) -> None:
    for raw in (PLAIN, b"From: a@example.com\n\nbody\n"):
        assert run_filter(raw, score, subject_tag="[SPAM]") == added_lines(score, b"\n") + raw


def test_filter_header_prefix() -> None:
    raw = b"X-Spam-Flag: YES\nX-SPAMCLI-FLAG: NO\nx-spamcli-status: No\n folded\nSubject: x\n\n"
    output = run_filter(raw, SPAM_SCORE, header_prefix="X-Spamcli-")

    # Another filter's X-Spam-Flag is not ours to remove under this prefix.
    assert output == added_lines(SPAM_SCORE, b"\n", "X-Spamcli-") + (
        b"X-Spam-Flag: YES\nSubject: x\n\n"
    )


@pytest.mark.parametrize(
    "options", [{"header_prefix": "X Spam-"}, {"header_prefix": "X:"}, {"subject_tag": "a\nb"}]
)
def test_filter_refuses_bad_prefix_and_tag(options: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        run_filter(PLAIN, **options)


def test_filter_model_name_is_safe_for_a_header(tmp_path: Path) -> None:
    assert model_name(tmp_path / "my model, v2 é") == "my_model__v2__"
    assert model_name(Path("models/default")) == "default"


# --------------------------------------------------------------------------
# The command


def invoke(runner: CliRunner, raw: bytes, *args: str | Path) -> Result:
    return runner.invoke(cli, ["filter", *map(str, args)], input=raw)


def one_message(heldout_dir: Path, label: str, number: int = 0) -> bytes:
    return sorted((heldout_dir / label).iterdir())[number].read_bytes()


def test_cli_filter_marks_ham_and_spam(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    for label, flag, status in (("ham", "NO", EXIT_HAM), ("spam", "YES", EXIT_SPAM)):
        raw = one_message(heldout_dir, label)
        result = invoke(runner, raw, "-m", trained_model_dir, "--exit-status")

        assert result.exit_code == status, result.output
        assert result.stderr == ""
        lines = result.stdout_bytes.split(b"\n", 3)
        assert lines[0] == f"X-Spam-Flag: {flag}".encode()
        assert STATUS_LINE.fullmatch(lines[2].decode())
        assert lines[2].decode().endswith(f"model={trained_model_dir.name}")
        assert lines[3] == raw
        # Without --exit-status the verdict stays out of the exit status.
        assert invoke(runner, raw, "-m", trained_model_dir).exit_code == 0


def test_cli_filter_score_is_predicts_score(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    for label in ("ham", "spam"):
        message = sorted((heldout_dir / label).iterdir())[1]
        predicted = runner.invoke(cli, ["predict", str(message), "-m", str(trained_model_dir)])
        predicted_label, score, _ = predicted.stdout.split(" ", 2)
        result = invoke(runner, message.read_bytes(), "-m", trained_model_dir)

        assert f"X-Spam-Score: {float(score):.4f}\n" in result.stdout
        assert f"X-Spam-Status: {'Yes' if predicted_label == 'spam' else 'No'}," in result.stdout


def test_cli_filter_unsure_exit_status(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    raw = one_message(heldout_dir, "spam")
    result = invoke(
        runner, raw, "-m", trained_model_dir, "--ham-cutoff", "0", "--spam-cutoff", "1",
        "--exit-status", "--subject-tag", "[SPAM]",
    )  # fmt: skip

    assert result.exit_code == EXIT_UNSURE
    assert result.stdout_bytes.startswith(b"X-Spam-Flag: NO\n")
    assert b"X-Spam-Status: Unsure, " in result.stdout_bytes
    assert result.stdout_bytes.endswith(raw)


def test_cli_filter_subject_tag_and_prefix(
    runner: CliRunner, trained_model_dir: Path, heldout_dir: Path
) -> None:
    raw = one_message(heldout_dir, "spam")
    result = invoke(
        runner, raw, "-m", trained_model_dir, "--subject-tag", "[SPAM]",
        "--header-prefix", "X-Spamcli-", "--spam-cutoff", "0",
    )  # fmt: skip

    assert result.exit_code == 0
    assert result.stdout.startswith("X-Spamcli-Flag: YES\nX-Spamcli-Score: ")
    assert "\nSubject: [SPAM] " in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--header-prefix", "X Spam"],
        ["--subject-tag", "two\nlines"],
        ["--spam-cutoff", "0.3", "--ham-cutoff", "0.6"],
        ["--spam-cutoff", "1.5"],
    ],
)
def test_cli_filter_usage_errors_before_reading(
    runner: CliRunner, trained_model_dir: Path, args: list[str]
) -> None:
    result = invoke(runner, PLAIN, "-m", trained_model_dir, *args)
    assert result.exit_code == 2
    assert result.stdout == ""


# Every way the model can fail: the message must come out unchanged.
def break_missing(model_dir: Path) -> Path:
    return model_dir.parent / "no-such-model"


def break_metadata(model_dir: Path) -> Path:
    (model_dir / METADATA_FILE).write_text('{"format_version": 1, "thresh')
    return model_dir


def break_weights(model_dir: Path) -> Path:
    weights = model_dir / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return model_dir


def break_kernel(model_dir: Path) -> Path:
    (model_dir / KERNEL_FILE).unlink()
    return model_dir


def break_metadata_network(model_dir: Path) -> Path:
    # The first kernel no longer fits what metadata.json says of the input.
    path = model_dir / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["features"]["bits"] += 1
    path.write_text(json.dumps(metadata))
    return model_dir


def break_ham_cutoff(model_dir: Path) -> Path:
    path = model_dir / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["ham_cutoff"] = "high"
    path.write_text(json.dumps(metadata))
    return model_dir


BREAKAGES = [
    break_missing,
    break_metadata,
    break_weights,
    break_kernel,
    break_metadata_network,
    break_ham_cutoff,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda function: function.__name__)
@pytest.mark.parametrize(
    ("flags", "status"),
    [([], 0), (["--tempfail"], EXIT_TEMPFAIL), (["--exit-status"], EXIT_ERROR),
     (["--exit-status", "--tempfail"], EXIT_TEMPFAIL)],
)  # fmt: skip
def test_cli_filter_broken_model_passes_the_message_unchanged(
    runner: CliRunner,
    model_copy: Path,
    heldout_dir: Path,
    breakage: Callable[[Path], Path],
    flags: list[str],
    status: int,
) -> None:
    raw = one_message(heldout_dir, "spam") + b"\xff\xfe invalid UTF-8\r\n"
    result = invoke(runner, raw, "-m", breakage(model_copy), *flags)

    assert result.exit_code == status
    assert result.stdout_bytes == raw
    assert result.stderr.startswith("spamcli: filter: the message passes unmarked: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("error", [MemoryError, RuntimeError("scoring broke"), RecursionError])
def test_cli_filter_scorer_errors_pass_the_message_unchanged(
    runner: CliRunner,
    trained_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException | type[BaseException],
) -> None:
    def broken(self: Scorer, raws: list[bytes]) -> list[float]:
        raise error

    monkeypatch.setattr(Scorer, "score_messages", broken)
    raw = b"Subject: x\r\n\r\nbody"
    for flags, status in (([], 0), (["--tempfail"], EXIT_TEMPFAIL), (["--exit-status"], 3)):
        result = invoke(runner, raw, "-m", trained_model_dir, *flags)

        assert (result.exit_code, result.stdout_bytes) == (status, raw)
        name = error.__name__ if isinstance(error, type) else type(error).__name__
        assert name in result.stderr
        assert result.stderr.count("\n") == 1


def test_cli_filter_ham_cutoff_above_the_models_threshold_passes_unchanged(
    runner: CliRunner, trained_model_dir: Path
) -> None:
    threshold = Scorer(trained_model_dir).threshold
    result = invoke(runner, PLAIN, "-m", trained_model_dir, "--ham-cutoff", "1")
    assert threshold < 1
    assert (result.exit_code, result.stdout_bytes) == (0, PLAIN)
    assert "ham cut-off" in result.stderr


def test_cli_filter_empty_input(runner: CliRunner, trained_model_dir: Path) -> None:
    result = invoke(runner, b"", "-m", trained_model_dir)
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 3
    assert result.stdout.startswith("X-Spam-Flag: ")


# --------------------------------------------------------------------------
# The process


def run_spamcli(
    args: list[str], raw: bytes, **kwargs: object
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "spamcli", *args],
        input=raw,
        capture_output=True,
        timeout=60,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


FILTER_IMPORTS = """
import sys
from spamcli.cli import main
sys.argv = ["spamcli", "filter", "-m", sys.argv[1]]
try:
    main()
except SystemExit as exit:
    status = exit.code
print("\\nexit", status)
print(*(name in sys.modules for name in ("tensorflow", "keras", "numpy")))
"""


def test_cli_filter_imports_neither_tensorflow_nor_numpy(
    trained_model_dir: Path, heldout_dir: Path
) -> None:
    raw = one_message(heldout_dir, "ham")
    completed = subprocess.run(
        [sys.executable, "-c", FILTER_IMPORTS, str(trained_model_dir)],
        input=raw,
        capture_output=True,
        timeout=60,
        check=False,
    )

    output, report = completed.stdout.rsplit(b"\nexit ", 1)
    assert output.startswith(b"X-Spam-Flag: NO\n"), completed.stderr
    assert output.endswith(raw)
    assert report == b"0\nFalse False False\n"


@pytest.mark.parametrize(("flags", "status"), [([], 1), (["--tempfail"], EXIT_TEMPFAIL)])
def test_cli_filter_unwritable_stdout_is_an_error(
    trained_model_dir: Path, tmp_path: Path, flags: list[str], status: int
) -> None:
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full here")
    with full.open("wb") as stdout:
        completed = subprocess.run(
            [sys.executable, "-m", "spamcli", "filter", "-m", str(trained_model_dir), *flags],
            input=PLAIN,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )

    assert completed.returncode == status
    assert completed.stderr.decode().startswith("spamcli: filter: cannot write the message: ")
    assert completed.stderr.count(b"\n") == 1, completed.stderr


def test_cli_filter_process_passes_a_large_message(trained_model_dir: Path) -> None:
    # Larger than a pipe's buffer both ways, and than what the model parses.
    raw = b"Subject: big\n\n" + b"0123456789abcdef\xff\r\n" * 200_000
    completed = run_spamcli(["filter", "-m", str(trained_model_dir)], raw)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.endswith(raw)
    assert completed.stdout.count(b"\n") == raw.count(b"\n") + 3


def test_cli_filter_passes_the_message_with_stderr_closed(tmp_path: Path) -> None:
    completed = subprocess.run(
        ["/bin/sh", "-c", 'exec "$0" -m spamcli filter -m "$1" 2>&-', sys.executable, tmp_path],
        input=PLAIN,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (completed.returncode, completed.stdout) == (0, PLAIN)
