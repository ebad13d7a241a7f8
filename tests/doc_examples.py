"""The examples of README.md and docs/*.md: found, run, compared, regenerated.

A fenced block is an example when the line before its opening fence is a
marker comment:

    <!-- example -->            a shell block run by tests/test_docs.py
    <!-- example: slow -->      the same, in the slow tests (it trains a model)
    <!-- example: corpus -->    needs the shared SpamAssassin corpus (slow)
    <!-- example: procmail -->  a procmail recipe, delivered through procmail
    <!-- example: maildrop -->  a maildrop recipe, delivered through maildrop
    <!-- example: serve -->     needs the serve extra (aiohttp, pymilter);
                                skips where it could not be installed
    <!-- not run: REASON -->    shown, never run: a configuration for
                                software the tests do not have, say

Every ``sh`` block must carry one of them (test_docs checks), so no example
goes untested by accident.

A shell block whose lines start with ``$ `` is a session: each ``$ ``
line is a command (ending in ``\\``, it goes on on the next line, which
starts with ``> ``), and the lines up to the
next one are what it prints on stdout. A command shown with no lines after
it is run but its output is not compared; a line ``...`` stands for any
number of lines. Output is compared after every number has been replaced
by ``N`` and every run of spaces by one: the built-in model is retrained
now and then, and its scores move, while the verdicts and the shape of the
output must not. Any other
shell block is a script, run with ``bash -e``. Every command and script
must exit 0.

Each block runs in a sandbox of its own, the same for every block: the
current folder holds ``data/samples/`` (the four sample messages), ``$HOME``
is ``/home/me`` as far as the output shows (the sandbox's real path is
replaced), with a Maildir ``~/Maildir`` of ham and ``~/Maildir/.Junk`` of
spam generated as conftest.py generates mail, and ``spamcli`` on the PATH
and in ``~/.local/bin`` runs this checkout's code. No $SPAMCLI_MODEL, no
user model: the built-in model, until a command makes one.

    .venv/bin/python tests/doc_examples.py --update README.md docs/*.md

runs every example that runs in the fast or slow tests and writes the
output each printed back into the page, with its real numbers, where the
page shows output (and no ``...``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
DOCUMENTED_PAGES = (REPOSITORY_DIR / "README.md", *sorted((REPOSITORY_DIR / "docs").glob("*.md")))
SAMPLES_DIR = REPOSITORY_DIR / "data" / "samples"
SHOWN_HOME = "/home/me"
# Generated mail in the sandbox's Maildir: enough for `train` to have a
# validation part of both classes, small enough to train in seconds.
GENERATED_PER_CLASS = 40
TIMEOUT = 900

MARKER = re.compile(r"<!--\s*(example|not run)(?::\s*(.*?))?\s*-->")
FENCE = re.compile(r"^```(\S*)\s*$")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Shell blocks: every one must be marked.
SHELL_LANGUAGES = ("sh", "shell", "bash", "console")
KINDS = ("", "slow", "corpus", "procmail", "maildrop", "serve")
# The kinds whose output --update writes back: those that need nothing but
# this checkout's environment (not the corpus, procmail or maildrop).
UPDATED_KINDS = ("", "slow", "serve")


@dataclass
class Block:
    """A fenced block of a page, and the marker before it (None: none)."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    lines: list[str]
    marker: str | None  # "example" or "not run"
    kind: str  # the marker's argument: a kind of example, or the reason

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPOSITORY_DIR)}:{self.line}"

    @property
    def is_session(self) -> bool:
        return bool(self.lines) and self.lines[0].startswith("$ ")


@dataclass
class Step:
    command: str
    shown: list[str] | None  # None: the page shows no output for it
    first_output_line: int = 0  # index into Block.lines of the first output line
    output_lines: int = 0


def find_blocks(path: Path) -> list[Block]:
    """Every fenced block of the page at PATH, with its marker."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        previous = lines[start - 1].strip() if start else ""
        marker = MARKER.fullmatch(previous)
        blocks.append(
            Block(
                path=path,
                line=start + 1,
                language=fence[1],
                lines=body,
                marker=marker[1] if marker else None,
                kind=(marker[2] or "") if marker else "",
            )
        )
        index += 1
    return blocks


def examples(kinds: tuple[str, ...] = KINDS) -> list[Block]:
    """The marked examples of every documented page, of the given kinds."""
    return [
        block
        for path in DOCUMENTED_PAGES
        for block in find_blocks(path)
        if block.marker == "example" and block.kind in kinds
    ]


def steps(block: Block) -> list[Step]:
    """The commands of a session block and the output shown for each."""
    result: list[Step] = []
    index = 0
    while index < len(block.lines):
        line = block.lines[index]
        if not line.startswith("$ "):
            raise ValueError(f"{block.where}: expected a '$ ' command, got {line!r}")
        command = line[2:]
        # A command goes on, after a backslash, on lines starting "> ".
        while command.endswith("\\") and index + 1 < len(block.lines):
            index += 1
            command = command[:-1] + "\n" + block.lines[index].removeprefix("> ")
        index += 1
        first = index
        while index < len(block.lines) and not block.lines[index].startswith("$ "):
            index += 1
        shown = block.lines[first:index]
        result.append(Step(command, shown or None, first, index - first))
    return result


# --------------------------------------------------------------------------
# The sandbox


@dataclass
class Sandbox:
    root: Path
    home: Path
    work: Path
    environment: dict[str, str] = field(default_factory=dict)

    def shown(self, text: str) -> str:
        """TEXT as the page would show it: the sandbox's home as /home/me."""
        return text.replace(str(self.home), SHOWN_HOME)


def make_sandbox(root: Path) -> Sandbox:
    """A fresh sandbox in ROOT (see the module's docstring)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import generated_mail

    home = root / "home" / "me"
    work = root / "work"
    shutil.copytree(SAMPLES_DIR, work / "data" / "samples")
    for folder, label, samples in (
        (home / "Maildir", "ham", ("ham-meeting.eml", "ham-newsletter.eml")),
        (home / "Maildir" / ".Junk", "spam", ("spam-pills.eml", "spam-prize.eml")),
    ):
        for part in ("cur", "new", "tmp"):
            (folder / part).mkdir(parents=True, exist_ok=True)
        messages = [(SAMPLES_DIR / name).read_bytes() for name in samples]
        messages += generated_mail(label, GENERATED_PER_CLASS, seed=7)
        for number, raw in enumerate(messages):
            part = "new" if number < len(samples) else "cur"
            flags = "" if part == "new" else ":2,S"
            (folder / part / f"17119{number:05d}.M{number}P1.sandbox{flags}").write_bytes(raw)
    (home / "Maildir" / ".Junk" / "maildirfolder").touch()  # a Maildir++ subfolder's mark
    # spamcli as this checkout's code, whatever is installed: on the PATH,
    # and in ~/.local/bin for recipes (delivery agents clear the environment).
    wrapper = (
        f"#!/bin/sh\nPYTHONPATH='{REPOSITORY_DIR}' exec '{sys.executable}' -m spamcli \"$@\"\n"
    )
    for bin_dir in (root / "bin", home / ".local" / "bin"):
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "spamcli").write_text(wrapper)
        (bin_dir / "spamcli").chmod(0o755)
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("SPAMCLI_MODEL", "XDG_DATA_HOME", "SPAMCLI_DATA", "PYTHONPATH")
    }
    environment.update(
        HOME=str(home),
        PATH=f"{root / 'bin'}{os.pathsep}{environment.get('PATH', '/usr/bin:/bin')}",
        LC_ALL="C.UTF-8",
        COLUMNS="80",
    )
    return Sandbox(root, home, work, environment)


def link_corpus(sandbox: Sandbox, corpus_dir: Path) -> None:
    """~/corpora/spamassassin: the shared corpus's archives, by symbolic links."""
    target = sandbox.home / "corpora" / "spamassassin"
    target.mkdir(parents=True)
    for archive in corpus_dir.iterdir():
        (target / archive.name).symlink_to(archive)


# --------------------------------------------------------------------------
# Running


@dataclass
class Outcome:
    step: Step
    output: str  # stdout, as the page would show it
    status: int


START = "\x1e"
END = "\x1f"


def run_session(block: Block, sandbox: Sandbox) -> tuple[list[Outcome], str]:
    """Run a session's commands in one shell, in order; their outcomes and stderr."""
    block_steps = steps(block)
    script = []
    for number, step in enumerate(block_steps):
        script.append(f"printf '{START}%d\\n' {number}")
        script.append(step.command)
        script.append(f"printf '{END}%d %d\\n' {number} $?")
    completed = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=sandbox.work,
        env=sandbox.environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    outcomes = []
    for number, step in enumerate(block_steps):
        match = re.search(
            rf"{START}{number}\n(.*?)\n?{END}{number} (\d+)\n", completed.stdout, re.DOTALL
        )
        if match is None:
            outcomes.append(Outcome(step, "", -1))
        else:
            outcomes.append(Outcome(step, sandbox.shown(match[1]), int(match[2])))
    return outcomes, sandbox.shown(completed.stderr)


def run_script(block: Block, sandbox: Sandbox) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", "\n".join(block.lines)],
        cwd=sandbox.work,
        env=sandbox.environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def normalised(lines: list[str]) -> list[str]:
    """Numbers as N, and runs of spaces as one: a column of numbers moves
    with their width."""
    return [" ".join(NUMBER.sub("N", line).split()) for line in lines]


def matches(shown: list[str], actual: list[str]) -> bool:
    """Whether ACTUAL has the shape SHOWN has: the same lines once numbers
    are N, with a line '...' in SHOWN standing for any number of lines."""
    shown, actual = normalised(shown), normalised(actual)

    def match(shown_index: int, actual_index: int) -> bool:
        if shown_index == len(shown):
            return actual_index == len(actual)
        if shown[shown_index] == "...":
            return any(
                match(shown_index + 1, next_index)
                for next_index in range(actual_index, len(actual) + 1)
            )
        return (
            actual_index < len(actual)
            and shown[shown_index] == actual[actual_index]
            and match(shown_index + 1, actual_index + 1)
        )

    return match(0, 0)


def check_block(block: Block, sandbox: Sandbox) -> list[str]:
    """Run BLOCK in SANDBOX; the problems found, none if it did as shown."""
    problems: list[str] = []
    if not block.is_session:
        completed = run_script(block, sandbox)
        if completed.returncode != 0:
            problems.append(
                f"{block.where}: the script exited {completed.returncode}:\n"
                f"{sandbox.shown(completed.stderr)}"
            )
        return problems
    outcomes, stderr = run_session(block, sandbox)
    for outcome in outcomes:
        command = outcome.step.command
        if outcome.status != 0:
            problems.append(
                f"{block.where}: `{command}` exited {outcome.status}; stderr:\n{stderr}"
            )
        elif outcome.step.shown is not None and not matches(
            outcome.step.shown, outcome.output.splitlines()
        ):
            problems.append(
                f"{block.where}: `{command}` printed:\n{outcome.output}\n"
                f"the page shows:\n" + "\n".join(outcome.step.shown)
            )
    return problems


# --------------------------------------------------------------------------
# Regenerating the output shown


def update_page(path: Path, work_root: Path) -> int:
    """Write into the page at PATH the output its runnable sessions print
    now; returns the number of steps changed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    changed = 0
    # From the last block up, so that earlier line numbers stay right.
    for number, block in reversed(list(enumerate(find_blocks(path)))):
        if block.marker != "example" or block.kind not in UPDATED_KINDS or not block.is_session:
            continue
        sandbox = make_sandbox(work_root / f"{path.stem}-{number}")
        outcomes, _ = run_session(block, sandbox)
        for outcome in reversed(outcomes):
            shown = outcome.step.shown
            if shown is None or "..." in shown or outcome.status != 0:
                continue
            actual = [line.rstrip() for line in outcome.output.splitlines()]
            if actual != shown:
                first = block.line + outcome.step.first_output_line
                lines[first : first + outcome.step.output_lines] = actual
                changed += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, default=list(DOCUMENTED_PAGES))
    parser.add_argument("--update", action="store_true", help="rewrite the output shown")
    options = parser.parse_args(arguments)
    import tempfile

    failed = 0
    with tempfile.TemporaryDirectory(prefix="spamcli-docs-") as work:
        for page in options.pages:
            page = page.resolve()
            if options.update:
                print(f"{page}: {update_page(page, Path(work))} outputs updated")
                continue
            for number, block in enumerate(find_blocks(page)):
                if block.marker != "example" or block.kind not in UPDATED_KINDS:
                    continue
                if block.language not in SHELL_LANGUAGES:
                    continue
                problems = check_block(block, make_sandbox(Path(work) / f"{page.stem}-{number}"))
                failed += bool(problems)
                for problem in problems:
                    print(problem)
    return 1 if failed else 0


def iter_shell_blocks() -> Iterator[Block]:
    for path in DOCUMENTED_PAGES:
        for block in find_blocks(path):
            if block.language in SHELL_LANGUAGES:
                yield block


if __name__ == "__main__":
    sys.exit(main())
