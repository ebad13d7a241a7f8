"""Tests of spamcli.vocabulary (the memory-mapped vocabulary index), of the
scorer's use of it, and of what a one-message predict leaves unimported.

The index must give every n-gram the index a dictionary of vocabulary.txt
gives it (out-of-vocabulary: bucket 0, as TextVectorization), so scores do
not depend on whether a model folder has one.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from spamcli import artifacts
from spamcli.artifacts import (
    VOCABULARY_FILE,
    VOCABULARY_INDEX_FILE,
    WeightsFile,
    read_vocabulary,
    read_vocabulary_lookup,
    write_vocabulary_index,
)
from spamcli.cli import cli
from spamcli.scoring import OUT_OF_VOCABULARY_INDEX, Scorer
from spamcli.vocabulary import StaleIndexError, VocabularyIndex, build_index

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "default"


def write_vocabulary(folder: Path, data: bytes) -> VocabularyIndex:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / VOCABULARY_FILE).write_bytes(data)
    (folder / VOCABULARY_INDEX_FILE).write_bytes(build_index(data))
    return VocabularyIndex(folder / VOCABULARY_INDEX_FILE, folder / VOCABULARY_FILE)


def as_dictionary(folder: Path) -> dict[str, int]:
    vocabulary = read_vocabulary(folder)
    return dict(zip(vocabulary, range(len(vocabulary)), strict=True))


@pytest.fixture(scope="module")
def default_index(tmp_path_factory: pytest.TempPathFactory) -> VocabularyIndex:
    """An index of the built-in model's vocabulary, in a scratch folder."""
    folder = tmp_path_factory.mktemp("default-vocabulary")
    return write_vocabulary(folder, (DEFAULT_MODEL_DIR / VOCABULARY_FILE).read_bytes())


@pytest.fixture(scope="module")
def default_dictionary() -> dict[str, int]:
    return as_dictionary(DEFAULT_MODEL_DIR)


def test_vocabulary_index_finds_every_term_of_the_default_model(
    default_index: VocabularyIndex, default_dictionary: dict[str, int]
) -> None:
    assert len(default_index) == len(default_dictionary) == 50_000
    for term, position in default_dictionary.items():
        assert default_index.get(term, OUT_OF_VOCABULARY_INDEX) == position


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(
        st.one_of(st.sampled_from(["the", "cash", "prize", "click", "here"]), st.text(max_size=12)),
        min_size=1,
        max_size=3,
    )
)
def test_vocabulary_index_agrees_with_a_dictionary_on_any_string(
    default_index: VocabularyIndex, default_dictionary: dict[str, int], words: list[str]
) -> None:
    # Known n-grams, unknown ones, the empty string, lone surrogates.
    gram = " ".join(words)

    assert default_index.get(gram, OUT_OF_VOCABULARY_INDEX) == default_dictionary.get(
        gram, OUT_OF_VOCABULARY_INDEX
    )


def test_vocabulary_index_reads_lines_as_read_vocabulary_does(tmp_path: Path) -> None:
    # A repeated term (the later index wins, as in a dictionary), an empty
    # line, letters beyond ASCII, and no newline after the last term.
    data = "[UNK]\nspam\nham\n\nspam\ncafé prix\nlast".encode()
    index = write_vocabulary(tmp_path, data)
    dictionary = as_dictionary(tmp_path)

    assert len(index) == len(read_vocabulary(tmp_path)) == 7
    for term in [*dictionary, "missing", "spa", "spam ", "last\n", "\ud800"]:
        assert index.get(term, -1) == dictionary.get(term, -1), term


def test_vocabulary_index_refuses_a_carriage_return() -> None:
    with pytest.raises(ValueError, match="carriage return"):
        build_index(b"[UNK]\nwin\r\n")


@pytest.mark.parametrize(
    "damage",
    [
        "vocabulary changed",
        "vocabulary same length",
        "index flipped byte",
        "index truncated",
        "index empty",
        "not an index",
    ],
)
def test_vocabulary_lookup_falls_back_to_the_dictionary(tmp_path: Path, damage: str) -> None:
    write_vocabulary(tmp_path, b"[UNK]\ncash\nprize\n").close()
    index_path = tmp_path / VOCABULARY_INDEX_FILE
    index_bytes = bytearray(index_path.read_bytes())
    if damage == "vocabulary changed":
        (tmp_path / VOCABULARY_FILE).write_bytes(b"[UNK]\nprize\ncash\nnew\n")
    elif damage == "vocabulary same length":
        (tmp_path / VOCABULARY_FILE).write_bytes(b"[UNK]\nprize\ncash\n")
    elif damage == "index flipped byte":
        index_bytes[-3] ^= 0x40
        index_path.write_bytes(index_bytes)
    elif damage == "index truncated":
        index_path.write_bytes(index_bytes[:-8])
    elif damage == "index empty":
        index_path.write_bytes(b"")
    else:
        index_path.write_bytes(b"SPAMCLIV" + bytes(len(index_bytes) - 8))

    with pytest.raises(StaleIndexError):
        VocabularyIndex(index_path, tmp_path / VOCABULARY_FILE)
    lookup, vocabulary = read_vocabulary_lookup(tmp_path)
    assert lookup == as_dictionary(tmp_path)
    assert vocabulary == read_vocabulary(tmp_path)


def test_vocabulary_training_writes_an_index_the_scorer_uses(trained_model_dir: Path) -> None:
    scorer = Scorer(trained_model_dir)

    assert (trained_model_dir / VOCABULARY_INDEX_FILE).is_file()
    assert isinstance(scorer._index, VocabularyIndex)
    assert len(scorer._index) == len(read_vocabulary(trained_model_dir))


def test_vocabulary_scores_are_the_same_with_and_without_the_index(
    model_copy: Path, generate_mail: object
) -> None:
    raws = [*generate_mail("spam", 6, 7), *generate_mail("ham", 6, 8)]  # type: ignore[operator]
    with_index = Scorer(model_copy)
    (model_copy / VOCABULARY_INDEX_FILE).unlink()
    without_index = Scorer(model_copy)

    assert isinstance(with_index._index, VocabularyIndex)
    assert isinstance(without_index._index, dict)
    for raw in raws:
        text = with_index.message_text(raw)
        assert with_index._present_set(text) == without_index._present_set(text)
        assert with_index.score_messages([raw]) == without_index.score_messages([raw])
    # More than a few messages: NumPy, after switching to the dictionary.
    assert with_index.score_messages(raws) == without_index.score_messages(raws)
    assert isinstance(with_index._index, dict)


def test_vocabulary_a_long_message_switches_to_the_dictionary(synthetic_model_dir: Path) -> None:
    write_vocabulary_index(synthetic_model_dir)
    scorer = Scorer(synthetic_model_dir)
    reference = Scorer(synthetic_model_dir)
    reference._use_dictionary()
    text = " ".join(["cash", "prize", "meeting", "the", "other"] * 2_000)

    assert isinstance(scorer._index, VocabularyIndex)
    assert scorer.score_text_light(text) == reference.score_text_light(text)
    assert isinstance(scorer._index, dict)


def test_vocabulary_index_command_adds_the_index(
    model_copy: Path, runner: CliRunner, message_file: object
) -> None:
    path = message_file("one.eml", b"Subject: cash prize\n\nClaim your cash prize now!\n")  # type: ignore[operator]
    (model_copy / VOCABULARY_INDEX_FILE).unlink()
    before = runner.invoke(cli, ["predict", "-m", str(model_copy), str(path)])

    result = runner.invoke(cli, ["index-vocabulary", "-m", str(model_copy)])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {model_copy / VOCABULARY_INDEX_FILE}\n"
    assert isinstance(Scorer(model_copy)._index, VocabularyIndex)
    assert sorted(item.name for item in model_copy.iterdir() if item.name.startswith(".")) == []
    after = runner.invoke(cli, ["predict", "-m", str(model_copy), str(path)])
    assert after.stdout == before.stdout


def test_vocabulary_index_command_refuses_a_folder_that_is_no_model(
    tmp_path: Path, runner: CliRunner
) -> None:
    result = runner.invoke(cli, ["index-vocabulary", "-m", str(tmp_path)])

    assert result.exit_code == 1
    assert "metadata.json is missing" in result.output
    assert not (tmp_path / VOCABULARY_INDEX_FILE).exists()


# --------------------------------------------------------------------------
# The weights file without zipfile, and what one message leaves unimported


def test_vocabulary_weights_directory_matches_zipfile(synthetic_model_dir: Path) -> None:
    path = synthetic_model_dir / artifacts.WEIGHTS_FILE
    weights = WeightsFile(path)

    assert artifacts._zip_members(weights._map) == artifacts._zip_members_with_zipfile(path)


def test_vocabulary_weights_with_an_archive_comment_are_read_by_zipfile(
    synthetic_model_dir: Path,
) -> None:
    path = synthetic_model_dir / artifacts.WEIGHTS_FILE
    plain = WeightsFile(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"written by hand"
    commented = WeightsFile(path)

    assert artifacts._zip_members(commented._map) is None
    assert commented._arrays == plain._arrays
    np.testing.assert_array_equal(
        commented.row("dense_0.kernel", 1), plain.row("dense_0.kernel", 1)
    )


def test_vocabulary_one_message_predict_imports_little(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """What a filter scoring one message must not import: each of these cost
    it milliseconds of start-up (see artifacts.py, corpus.py)."""
    message = tmp_path / "one.eml"
    message.write_bytes(b"Subject: cash prize\n\nClaim your cash prize now!\n")
    unwanted = ["numpy", "zipfile", "shutil", "tempfile", "secrets", "hashlib"]
    program = (
        "import sys\n"
        "from spamcli.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    print('exit', exit.code)\n"
        f"print(sorted(name for name in {unwanted!r} if name in sys.modules))\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", program, "predict", str(message), "-m", str(trained_model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.stdout.splitlines()[-2:] == ["exit 0", "[]"], (
        completed.stdout + completed.stderr
    )
