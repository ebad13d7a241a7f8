"""A long property-based run over the message parser, the tokenizer and the scorer.

Each input (arbitrary bytes, a generated message, or a generated message
broken the ways real mail breaks; see tests/mail_strategies.py) goes through
mail.extract_fields under both header policies, tokens.message_tokens, and
the built-in model's scorer, with and without NumPy. Nothing may raise, every
score must be in [0, 1], the two scorers must agree to 1e-9, and no input may
take more than --slow seconds (an input over it is timed again three times
at the end, since a loaded machine stalls any single call). The property
tests in tests/test_properties.py check the same with a few hundred
examples; this runs as many as asked.

With --filter, each input also goes through spamcli.filtering.filter_message
(what `spamcli filter` does), as it is and with verdict fields of its own
planted on top: the output is the three fields added to the input without
any fields of those names, after an envelope line and lines starting with
white space only, the score in [0, 1]; and filtering the output again gives
it back unchanged. tests/test_filter.py checks the same on a few hundred.

    .venv/bin/python bench/fuzz.py [--examples 100000] [--minutes M] [--seed N]
        [--slow 1.0] [--filter]

The run goes in rounds of 1,000 examples, each with its own seed, and stops
after --examples inputs or, if given, after the round that passes --minutes.

Prints the inputs tried, the time taken and the slowest input, and, if a
property fails, the smallest failing input hypothesis found. Exit status 0
when nothing failed, 1 when a property failed or an input stayed slow.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from mail_strategies import hostile_mail  # noqa: E402

from spamcli.config import HEADER_POLICIES  # noqa: E402
from spamcli.filtering import (  # noqa: E402
    filter_message,
    model_name,
    remove_verdict_fields,
    verdict_fields,
)
from spamcli.mail import extract_fields  # noqa: E402
from spamcli.scoring import Scorer  # noqa: E402
from spamcli.tokens import message_tokens  # noqa: E402

DEFAULT_MODEL_DIR = ROOT / "models" / "default"
# Examples per hypothesis run; each round has its own seed.
ROUND = 1_000
# Fields a sender may put in its own mail to pre-mark it, folded and in any case.
PLANTED_FIELDS = b"x-spam-FLAG: NO\nX-Spam-Score:\n 0.0000\nX-SPAM-Status : No\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100_000, help="inputs to try")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first round")
    parser.add_argument("--slow", type=float, default=1.0, help="seconds an input may take")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="model folder")
    parser.add_argument(
        "--filter", action="store_true", help="check the filter's round trip on each input too"
    )
    arguments = parser.parse_args()

    scorer = Scorer(arguments.model)
    cutoffs = scorer.cutoffs()
    tried = 0
    slowest = (0.0, b"")
    slow_inputs: list[bytes] = []
    started = time.monotonic()

    @settings(
        max_examples=ROUND,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(raw=hostile_mail())
    def property_holds(raw: bytes) -> None:
        nonlocal tried, slowest
        tried += 1
        if tried % 10_000 == 0:
            elapsed = time.monotonic() - started
            print(f"{tried} inputs in {elapsed:.0f} s", file=sys.stderr, flush=True)
        begin = time.perf_counter()
        check(raw)
        seconds = time.perf_counter() - begin
        if seconds > slowest[0]:
            slowest = (seconds, raw)
        if seconds > arguments.slow and len(slow_inputs) < 100:
            slow_inputs.append(raw)

    def check(raw: bytes) -> None:
        for policy in HEADER_POLICIES:
            fields = extract_fields(raw, policy)
            assert all(isinstance(field, str) and isinstance(text, str) for field, text in fields)
            assert all(text.strip() and "\x00" not in text for _, text in fields)
            text = message_tokens(raw, policy)
            assert "\x00" not in text and "  " not in text
        light = scorer.score_messages([raw])[0]
        batch = float(scorer.score_texts([scorer.message_text(raw)])[0])
        assert 0.0 <= light <= 1.0 and not math.isnan(light), light
        assert abs(light - batch) <= 1e-9, (light, batch)
        if arguments.filter:
            check_filter(raw)
            check_filter(PLANTED_FIELDS + raw)

    def check_filter(raw: bytes) -> None:
        filtered = filter_message(raw, scorer, cutoffs)
        output = filtered.raw
        assert 0.0 <= filtered.score <= 1.0, filtered.score
        assert filtered.label == cutoffs.label(filtered.score)
        fields = verdict_fields(
            filtered.label, filtered.score, cutoffs, model_name(scorer.model_dir), "X-Spam-"
        )
        blocks = [b"".join(f.encode() + end for f in fields) for end in (b"\r\n", b"\n")]
        added = next((block for block in blocks if block in output), None)
        assert added is not None, output[:200]
        before, after = output.split(added, 1)
        assert before + after == remove_verdict_fields(raw), raw[:200]
        # A last line starting with white space is given a line ending.
        line_ending = b"\r\n" if added.endswith(b"\r\n") else b"\n"
        assert before in (raw[: len(before)], raw + line_ending), raw[:200]
        top_lines = re.findall(rb"[^\n]*\n", before)
        if top_lines and top_lines[0].startswith(b"From "):
            top_lines.pop(0)
        assert all(line.startswith((b" ", b"\t")) for line in top_lines), raw[:200]
        assert filter_message(output, scorer, cutoffs).raw == output, raw[:200]

    failed = False
    deadline = None if arguments.minutes is None else started + 60 * arguments.minutes
    round_number = 0
    while tried < arguments.examples and (deadline is None or time.monotonic() < deadline):
        try:
            seed(arguments.seed + round_number)(property_holds)()
        except Exception as error:  # report, whatever the property raised
            failed = True
            print(f"FAILED: {type(error).__name__}: {error}")
            break
        round_number += 1
    elapsed = time.monotonic() - started
    still_slow = []
    for raw in slow_inputs:
        best = min(timed(check, raw) for _ in range(3))
        if best > arguments.slow:
            still_slow.append((best, raw))
    print(f"inputs over {arguments.slow} s once: {len(slow_inputs)}; still over it when timed")
    print(f"again (best of 3): {len(still_slow)}")
    for best, raw in still_slow[:5]:
        print(f"  {best:.2f} s: {raw[:200]!r}")
    failed = failed or bool(still_slow)
    print(f"inputs tried: {tried} in {elapsed:.0f} s ({tried / max(elapsed, 1e-9):.0f} a second)")
    print(f"slowest input: {slowest[0] * 1000:.1f} ms, {len(slowest[1])} bytes")
    print("result: a property failed" if failed else "result: no failure")
    return 1 if failed else 0


def timed(function: Callable[[bytes], None], raw: bytes) -> float:
    begin = time.perf_counter()
    function(raw)
    return time.perf_counter() - begin


if __name__ == "__main__":
    sys.exit(main())
