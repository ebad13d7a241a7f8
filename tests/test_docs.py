"""README.md and docs/: every example runs, every link resolves, every
command and option is in the reference, and the README stays short.

The examples are found and run by tests/doc_examples.py (its docstring
gives the markers). Examples that train a model are slow; those that read
the shared SpamAssassin corpus are slow and skip without it; the procmail
and maildrop recipes are delivered through the real programs, and skip
when they are not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from doc_examples import (
    DOCUMENTED_PAGES,
    KINDS,
    REPOSITORY_DIR,
    SAMPLES_DIR,
    Block,
    check_block,
    examples,
    find_blocks,
    iter_shell_blocks,
    link_corpus,
    make_sandbox,
)
from serve_support import needs_serve_extra

from spamcli.cli import cli

README = REPOSITORY_DIR / "README.md"
COMMANDS_PAGE = REPOSITORY_DIR / "docs" / "commands.md"
CORPUS_DIR = REPOSITORY_DIR.parent / "shared" / "corpora" / "spamassassin"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Pages other engineers are writing with their features; linked already.


def example_parameters(*kinds: str) -> list[object]:
    return [pytest.param(block, id=block.where) for block in examples(kinds)]


def run_example(block: Block, tmp_path: Path) -> None:
    sandbox = make_sandbox(tmp_path)
    if block.kind == "serve":
        needs_serve_extra("aiohttp", "Milter")
    if block.kind == "corpus":
        if not CORPUS_DIR.is_dir():
            pytest.skip(f"the shared corpus is not at {CORPUS_DIR}")
        link_corpus(sandbox, CORPUS_DIR)
    problems = check_block(block, sandbox)
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("block", example_parameters("", "serve"))
def test_docs_example_runs_as_shown(block: Block, tmp_path: Path) -> None:
    run_example(block, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("block", example_parameters("slow", "corpus"))
def test_docs_slow_example_runs_as_shown(block: Block, tmp_path: Path) -> None:
    run_example(block, tmp_path)


def test_docs_every_shell_block_is_an_example_or_says_why_not() -> None:
    unmarked = [block.where for block in iter_shell_blocks() if block.marker is None]
    assert not unmarked, (
        "shell blocks without <!-- example --> or <!-- not run: REASON --> "
        f"(see tests/doc_examples.py): {unmarked}"
    )
    unexplained = [
        block.where for block in iter_shell_blocks() if block.marker == "not run" and not block.kind
    ]
    assert not unexplained, f"<!-- not run --> needs a reason: {unexplained}"


def test_docs_markers_name_known_kinds() -> None:
    for path in DOCUMENTED_PAGES:
        for block in find_blocks(path):
            if block.marker == "example":
                assert block.kind in KINDS, block.where


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of the page at PATH."""
    found = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        found.add(slug)
    return found


def test_docs_links_resolve() -> None:
    broken = []
    for page in DOCUMENTED_PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_docs_readme_is_short_and_links_every_page() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    quick_start = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    assert len(quick_start.strip().splitlines()) <= 60
    for page in sorted((REPOSITORY_DIR / "docs").glob("*.md")):
        assert f"docs/{page.name}" in text, f"README does not link docs/{page.name}"


def all_commands() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []

    def walk(prefix: str, command: click.Command) -> None:
        if isinstance(command, click.Group):
            # As click's help finds them: the commands are imported lazily.
            context = click.Context(command)
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                assert sub is not None, name
                walk(f"{prefix} {name}".strip(), sub)
        else:
            found.append((prefix, command))

    walk("", cli)
    return found


# Commands documented on pages of their own (docs/serve.md).
COMMANDS_ELSEWHERE = ("serve",)
# Options documented there: evaluate --online and its company, in
# docs/online-learning.md.
OPTIONS_ELSEWHERE = {"evaluate": {"--online", "--order", "--train", "--from-scratch", "--seed"}}


def test_docs_reference_has_every_command_and_option() -> None:
    reference = COMMANDS_PAGE.read_text(encoding="utf-8")
    missing = []
    for name, command in all_commands():
        if name in COMMANDS_ELSEWHERE:
            continue
        if f"spamcli {name}" not in reference:
            missing.append(f"spamcli {name}")
        for parameter in command.params:
            if not isinstance(parameter, click.Option) or parameter.hidden:
                continue
            longest = max(parameter.opts, key=len)
            if longest == "--help" or longest in OPTIONS_ELSEWHERE.get(name, ()):
                continue
            # In a code span of the page: `--quiet`, `-q, --quiet`, `--record/--no-record`.
            if not re.search(rf"`[^`\n]*{re.escape(longest)}(?![\w-])", reference):
                missing.append(f"spamcli {name} {longest}")
    assert not missing, missing


def test_docs_reference_gives_the_defaults_the_commands_have() -> None:
    # Each option's row in a table of docs/commands.md names its default as
    # the command has it: "(default 1)", "default `.Junk`".
    rows = [
        line
        for line in COMMANDS_PAGE.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    ]
    wrong = []
    for name, command in all_commands():
        for parameter in command.params:
            default = parameter.default
            if not isinstance(parameter, click.Option) or isinstance(default, bool):
                continue
            if not isinstance(default, int | float | str) or default == "":
                continue
            longest = max(parameter.opts, key=len)
            row = next(
                (row for row in rows if re.search(rf"`[^`]*{re.escape(longest)}(?![\w-])", row)),
                None,
            )
            if row is None or "default" not in row:
                continue
            if not re.search(rf"default:? `?{re.escape(str(default))}`?(?![\w.])", row):
                wrong.append(f"spamcli {name} {longest}: the command's default is {default!r}")
    assert not wrong, wrong


def test_docs_samples_are_the_ones_the_examples_use() -> None:
    names = sorted(path.name for path in SAMPLES_DIR.iterdir())
    assert names == ["ham-meeting.eml", "ham-newsletter.eml", "spam-pills.eml", "spam-prize.eml"]


# --------------------------------------------------------------------------
# The recipes, through the real delivery agents

PROCMAIL = Path("/usr/bin/procmail")
MAILDROP = Path("/usr/bin/maildrop")


def recipe_blocks(kind: str) -> list[object]:
    return [pytest.param(block, id=block.where) for block in examples((kind,))]


def delivered(maildir: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((maildir / "new").iterdir())]


def empty_maildirs(home: Path) -> None:
    """~/Maildir and ~/Maildir/.Junk, empty: the sandbox's are filled."""
    shutil.rmtree(home / "Maildir")
    for folder in (home / "Maildir", home / "Maildir" / ".Junk"):
        for part in ("cur", "new", "tmp"):
            (folder / part).mkdir(parents=True)


@pytest.mark.integration
@pytest.mark.parametrize("block", recipe_blocks("procmail"))
def test_docs_procmail_recipe_files_spam(block: Block, tmp_path: Path) -> None:
    if not PROCMAIL.exists():
        pytest.skip(f"procmail is not installed ({PROCMAIL} is missing)")
    sandbox = make_sandbox(tmp_path)
    empty_maildirs(sandbox.home)
    rcfile = sandbox.home / ".procmailrc"
    # procmail clears its environment: the page's recipe, with a log and
    # the sandbox's HOME before it.
    rcfile.write_text(
        f'SHELL=/bin/sh\nHOME="{sandbox.home}"\nLOGFILE="{sandbox.home}/procmail.log"\n'
        + "\n".join(block.lines)
        + "\n"
    )
    for name in ("spam-prize.eml", "ham-meeting.eml"):
        completed = subprocess.run(
            [str(PROCMAIL), "-m", str(rcfile)],
            input=(SAMPLES_DIR / name).read_bytes(),
            capture_output=True,
            timeout=120,
            env={**sandbox.environment},
            cwd=sandbox.home,
        )
        assert completed.returncode == 0, completed.stderr
    junk = delivered(sandbox.home / "Maildir" / ".Junk")
    inbox = delivered(sandbox.home / "Maildir")
    assert [message.split(b"\n", 1)[0] for message in junk] == [b"X-Spam-Flag: YES"]
    assert [message.split(b"\n", 1)[0] for message in inbox] == [b"X-Spam-Flag: NO"]


@pytest.mark.integration
@pytest.mark.parametrize("block", recipe_blocks("maildrop"))
def test_docs_maildrop_recipe_files_spam(block: Block, tmp_path: Path) -> None:
    if not MAILDROP.exists():
        pytest.skip(f"maildrop is not installed ({MAILDROP} is missing)")
    sandbox = make_sandbox(tmp_path)
    empty_maildirs(sandbox.home)
    mailfilter = sandbox.home / ".mailfilter"
    # maildrop takes HOME from the password file: the sandbox's first.
    mailfilter.write_text(
        f'HOME="{sandbox.home}"\nDEFAULT="{sandbox.home}/Maildir"\n' + "\n".join(block.lines) + "\n"
    )
    mailfilter.chmod(0o600)  # maildrop refuses a filter file others may write
    for name in ("spam-prize.eml", "ham-meeting.eml"):
        completed = subprocess.run(
            [str(MAILDROP), str(mailfilter)],
            input=(SAMPLES_DIR / name).read_bytes(),
            capture_output=True,
            timeout=120,
            env={**sandbox.environment, "HOME": str(sandbox.home)},
            cwd=sandbox.home,
        )
        assert completed.returncode == 0, completed.stderr
    junk = delivered(sandbox.home / "Maildir" / ".Junk")
    inbox = delivered(sandbox.home / "Maildir")
    assert [message.split(b"\n", 1)[0] for message in junk] == [b"X-Spam-Flag: YES"]
    assert [message.split(b"\n", 1)[0] for message in inbox] == [b"X-Spam-Flag: NO"]
