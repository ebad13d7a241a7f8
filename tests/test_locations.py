"""Which model folder a command uses and why, and where train and learn write.

The order is -m, $SPAMCLI_MODEL, the user model (if it exists), the built-in
model; the built-in model is never written. A model path that is a file or
cannot be read never stops `spamcli filter` from passing the message on,
and every error about the model names the option or the variable at fault.
conftest.py points $XDG_DATA_HOME at an empty folder for every test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spamcli import locations
from spamcli.cli import cli
from spamcli.config import EXIT_ERROR
from spamcli.locations import (
    BUILTIN,
    ENVIRONMENT,
    OPTION,
    USER,
    ModelLocation,
    builtin_model_dir,
    resolve_model,
    user_model_dir,
    writable_model,
)

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
SAMPLE = REPOSITORY_DIR / "data" / "samples" / "spam-prize.eml"
EXIT_TEMPFAIL = 75


def invoke(*args: object, env: dict[str, str] | None = None, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args], env=env, input=input)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under FOLDER, hidden ones included, with its SHA-256."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def checkout_status() -> str:
    """`git status` of the folders a command could write in the checkout,
    ignored files included (other work may change the rest meanwhile)."""
    completed = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--", "models", "data"],
        cwd=REPOSITORY_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if completed.returncode != 0:
        pytest.skip("not a git checkout")
    return completed.stdout


# --------------------------------------------------------------------------
# The order


def test_locations_option_wins_over_everything(tmp_path: Path) -> None:
    environment = {"SPAMCLI_MODEL": str(tmp_path / "variable"), "XDG_DATA_HOME": str(tmp_path)}
    (tmp_path / "spamcli" / "model").mkdir(parents=True)

    location = resolve_model(tmp_path / "option", environment)

    assert location == ModelLocation(tmp_path / "option", OPTION)


def test_locations_variable_wins_over_the_user_model(tmp_path: Path) -> None:
    (tmp_path / "spamcli" / "model").mkdir(parents=True)
    environment = {"SPAMCLI_MODEL": str(tmp_path / "variable"), "XDG_DATA_HOME": str(tmp_path)}

    assert resolve_model(None, environment) == ModelLocation(tmp_path / "variable", ENVIRONMENT)
    # An empty option or variable counts as not given.
    assert resolve_model("", environment).origin == ENVIRONMENT
    assert resolve_model(None, {**environment, "SPAMCLI_MODEL": ""}).origin == USER


def test_locations_user_model_only_if_it_exists(tmp_path: Path) -> None:
    environment = {"XDG_DATA_HOME": str(tmp_path)}

    before = resolve_model(None, environment)
    (tmp_path / "spamcli" / "model").mkdir(parents=True)
    after = resolve_model(None, environment)

    assert before == ModelLocation(builtin_model_dir(), BUILTIN)
    assert after == ModelLocation(tmp_path / "spamcli" / "model", USER)


def test_locations_user_model_dir_follows_xdg(tmp_path: Path) -> None:
    assert user_model_dir({"XDG_DATA_HOME": "/srv/data", "HOME": "/home/a"}) == Path(
        "/srv/data/spamcli/model"
    )
    assert user_model_dir({"HOME": "/home/a"}) == Path("/home/a/.local/share/spamcli/model")
    # A relative XDG_DATA_HOME is to be ignored (the XDG base directory spec).
    assert user_model_dir({"XDG_DATA_HOME": "rel", "HOME": "/home/a"}) == Path(
        "/home/a/.local/share/spamcli/model"
    )


def test_locations_built_in_model_is_the_package_resource_or_the_checkout() -> None:
    import importlib.resources

    resource = importlib.resources.files("spamcli").joinpath("models", "default")
    expected = resource if resource.is_dir() else REPOSITORY_DIR / "models" / "default"

    assert builtin_model_dir() == expected
    assert (builtin_model_dir() / "metadata.json").is_file()
    assert locations.is_builtin_model(builtin_model_dir())
    assert not locations.is_builtin_model(REPOSITORY_DIR / "models")


@pytest.mark.parametrize(
    ("arguments", "environment", "reason"),
    [
        (["-m", "{model}"], {}, "given with -m/--model"),
        ([], {"SPAMCLI_MODEL": "{model}"}, "given with $SPAMCLI_MODEL"),
        ([], {}, "the built-in model, read-only (no -m/--model, no $SPAMCLI_MODEL, no user model"),
    ],
    ids=["option", "variable", "built-in"],
)
def test_locations_info_says_which_model_and_why(
    synthetic_model_dir: Path, arguments: list[str], environment: dict[str, str], reason: str
) -> None:
    arguments = [argument.format(model=synthetic_model_dir) for argument in arguments]
    environment = {
        name: value.format(model=synthetic_model_dir) for name, value in environment.items()
    }

    result = invoke("info", *arguments, env=environment)

    assert result.exit_code == 0, result.output
    row = result.stdout.splitlines()[1]
    assert row.startswith("in use as       ")
    assert reason in row


def test_locations_info_names_the_user_model(
    synthetic_model_dir: Path, isolated_model_locations: Path
) -> None:
    shutil.copytree(synthetic_model_dir, isolated_model_locations / "spamcli" / "model")

    result = invoke("info", "--format", "json")

    assert result.exit_code == 0, result.output
    assert '"origin": "user"' in result.stdout
    assert str(isolated_model_locations / "spamcli" / "model") in result.stdout


# --------------------------------------------------------------------------
# Bad model paths: filter passes the message on, errors name the culprit


def bad_model_paths(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a model\n")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    return {"file": a_file, "missing": tmp_path / "missing", "empty": empty}


@pytest.mark.parametrize("kind", ["file", "missing", "empty"])
@pytest.mark.parametrize("given_by", ["option", "variable"])
@pytest.mark.parametrize("tempfail", [False, True])
def test_locations_filter_passes_the_message_whatever_the_model_path(
    tmp_path: Path, kind: str, given_by: str, tempfail: bool
) -> None:
    path = bad_model_paths(tmp_path)[kind]
    raw = SAMPLE.read_bytes()
    arguments = ["filter", *(["--tempfail"] if tempfail else [])]
    environment = {}
    if given_by == "option":
        arguments += ["-m", str(path)]
    else:
        environment["SPAMCLI_MODEL"] = str(path)

    result = invoke(*arguments, env=environment, input=raw)

    assert result.exit_code == (EXIT_TEMPFAIL if tempfail else 0), result.output
    assert result.stdout_bytes == raw
    culprit = "-m/--model" if given_by == "option" else "$SPAMCLI_MODEL"
    assert result.stderr.startswith("spamcli: filter: the message passes unmarked: ")
    assert result.stderr.rstrip().endswith(f"(set by {culprit})")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder whatever its permissions")
def test_locations_filter_passes_the_message_with_an_unreadable_model(tmp_path: Path) -> None:
    unreadable = shutil.copytree(builtin_model_dir(), tmp_path / "model")
    unreadable.chmod(0)
    try:
        result = invoke("filter", "-m", unreadable, input=SAMPLE.read_bytes())
    finally:
        unreadable.chmod(0o755)

    assert result.exit_code == 0
    assert result.stdout_bytes == SAMPLE.read_bytes()
    assert "permission denied (set by -m/--model)" in result.stderr


def test_locations_filter_in_a_process_passes_the_message_with_a_file_as_model(
    tmp_path: Path,
) -> None:
    # The whole program, click's option handling included, as a delivery
    # agent runs it: no usage error (exit 2, nothing on stdout) any more.
    a_file = bad_model_paths(tmp_path)["file"]
    raw = SAMPLE.read_bytes()

    completed = subprocess.run(
        [sys.executable, "-m", "spamcli", "filter", "--tempfail"],
        input=raw,
        capture_output=True,
        timeout=60,
        env={**os.environ, "SPAMCLI_MODEL": str(a_file)},
    )

    assert completed.returncode == EXIT_TEMPFAIL
    assert completed.stdout == raw
    assert completed.stderr.decode() == (
        f"spamcli: filter: the message passes unmarked: {a_file} is a file, not a model "
        "folder (set by $SPAMCLI_MODEL)\n"
    )


@pytest.mark.parametrize("command", ["predict", "info", "sort"])
def test_locations_errors_name_the_variable(tmp_path: Path, command: str) -> None:
    path = bad_model_paths(tmp_path)["file"]
    arguments = {"predict": ["predict", SAMPLE], "info": ["info"], "sort": ["sort", tmp_path]}

    result = invoke(*arguments[command], env={"SPAMCLI_MODEL": str(path)})

    assert result.exit_code == 1
    assert result.stderr == f"Error: {path} is a file, not a model folder (set by $SPAMCLI_MODEL)\n"


@pytest.mark.parametrize("kind", ["a FIFO", "a broken symbolic link"])
def test_locations_a_model_path_that_is_no_folder_says_what_it_is(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "model"
    if kind == "a FIFO":
        os.mkfifo(path)
    else:
        path.symlink_to(tmp_path / "gone")

    result = invoke("predict", SAMPLE, "-m", path)

    assert result.exit_code == 1
    assert result.stderr == f"Error: {path} is {kind}, not a model folder (set by -m/--model)\n"


def test_locations_predict_exit_status_error_in_the_same_style(tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    result = invoke("predict", "--exit-status", "-m", missing, SAMPLE)

    assert result.exit_code == EXIT_ERROR
    assert result.stderr == f"Error: no model folder at {missing} (set by -m/--model)\n"


def test_locations_evaluate_names_the_option(tmp_path: Path) -> None:
    result = invoke("evaluate", "-m", tmp_path / "missing", "--spam", SAMPLE, "--no-record")

    assert result.exit_code == 1
    assert result.stderr.rstrip().endswith("(set by -m/--model)")


# --------------------------------------------------------------------------
# Writing: never the built-in model


def test_locations_writable_model_copies_the_built_in_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in built-in model with files of any name: the copy is generic.
    builtin = tmp_path / "package" / "models" / "default"
    builtin.mkdir(parents=True)
    for name, content in {"weights.npz": b"w", "metadata.json": b"{}", "README.md": b"# m"}.items():
        (builtin / name).write_bytes(content)
    (builtin / "sub").mkdir()
    (builtin / "sub" / "part.bin").write_bytes(b"p")
    monkeypatch.setattr(locations, "builtin_model_dir", lambda: builtin)
    environment = {"XDG_DATA_HOME": str(tmp_path / "data")}
    user_dir = tmp_path / "data" / "spamcli" / "model"

    first = writable_model(builtin, environment)
    (user_dir / "learned.jsonl").write_text("{}\n")
    second = writable_model(builtin, environment)
    elsewhere = writable_model(tmp_path / "other", environment)

    assert first == locations.WritableModel(user_dir, copied_from=builtin)
    assert tree_digest(user_dir) == {
        **tree_digest(builtin),
        "learned.jsonl": tree_digest(user_dir)["learned.jsonl"],
    }
    # An existing user model is never replaced by the copy.
    assert second == locations.WritableModel(user_dir)
    assert (user_dir / "learned.jsonl").is_file()
    assert elsewhere == locations.WritableModel(tmp_path / "other")


def test_locations_train_refuses_the_built_in_model() -> None:
    result = invoke("train", "-m", builtin_model_dir(), "--ham", SAMPLE, "--spam", SAMPLE)

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {builtin_model_dir()} is the built-in model, which is read-only; "
        "train into another folder (set by -m/--model)\n"
    )


def test_locations_evaluate_does_not_record_into_the_built_in_model() -> None:
    before = tree_digest(builtin_model_dir())

    result = invoke("evaluate", "--spam", SAMPLE)

    assert result.exit_code == 0, result.output
    assert "the built-in model is read-only; the evaluation is not recorded" in result.stderr
    assert tree_digest(builtin_model_dir()) == before


def test_locations_train_and_learn_without_model_leave_the_checkout_alone(
    corpus_dir: Path, isolated_model_locations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a developer runs them, from the checkout, with no -m and no
    # $SPAMCLI_MODEL: the user model is made, the checkout is untouched.
    monkeypatch.chdir(REPOSITORY_DIR)
    builtin_before = tree_digest(builtin_model_dir())
    status_before = checkout_status()
    user_dir = isolated_model_locations / "spamcli" / "model"
    spam = sorted((corpus_dir / "spam").iterdir())[:2]

    learned = invoke("learn", "--spam", *spam)
    learned_files = tree_digest(user_dir) if user_dir.is_dir() else {}
    trained = invoke(
        "train", "-q", "--epochs", "1", "--ham", corpus_dir / "ham", "--spam", corpus_dir / "spam"
    )

    assert learned.exit_code == 0, learned.output
    assert f"copied it to {user_dir}" in learned.stderr
    # The copy learned: its files are no longer the built-in model's.
    assert learned_files and learned_files != builtin_before
    assert trained.exit_code == 0, trained.output
    assert trained.stdout.splitlines()[-1] == f"saved {user_dir}"
    assert tree_digest(builtin_model_dir()) == builtin_before
    assert checkout_status() == status_before
