"""No lost work: `spamcli train` into an existing model folder, interrupted
or starved of disk, leaves the previous model whole, and readers running
while it replaces the model always see one complete model.

Each training here is a subprocess (the signals go to it, not to pytest):
a few seconds for the TensorFlow import and a few for the tiny corpus, so
most tests are marked slow. The interruption points are found by watching
the process, never by hooks in spamcli: reading is caught blocked on a FIFO
named with --ham (nobody writes to it), fitting by Keras' "Epoch" lines on
stderr, saving by the temporary folder write_model_dir creates beside the
model.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from spamcli import artifacts, interruption
from spamcli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(ROOT)}
SPAMCLI = [sys.executable, "-m", "spamcli"]
TRAINING_TIMEOUT = 300


# A line TensorFlow's C++ runtime logs ("W0000 00:00:1796649652.245997
# 17776 generator_dataset_op.cc:113] ..."), and its continuation lines.
_TENSORFLOW_LOG = re.compile(r"[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]|\t")


def spamcli_lines(output: str) -> list[str]:
    """OUTPUT's lines but TensorFlow's own log lines: interrupted while
    fitting, TensorFlow sometimes logs a GeneratorDataset iterator it could
    not finalize as the interpreter shuts down, after spamcli's last line
    (in 2 of 3 runs of the six cases, 2026-12-07)."""
    return [
        line for line in output.rstrip().splitlines() if line and not _TENSORFLOW_LOG.match(line)
    ]


def listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def staging_folders(model_dir: Path) -> list[Path]:
    return sorted(model_dir.parent.glob(f".{model_dir.name}.new-*"))


def predict_output(model_dir: Path, messages: Path) -> str:
    completed = subprocess.run(
        [*SPAMCLI, "predict", "-m", str(model_dir), str(messages)],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENVIRONMENT,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def start_training(
    model_dir: Path, corpus_dir: Path, *extra: str | Path, epochs: int = 60
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *SPAMCLI,
            "train",
            "-v",  # Keras' "Epoch N/M" lines tell where the training is
            "-m",
            str(model_dir),
            "--epochs",
            str(epochs),
            "--ham",
            str(corpus_dir / "ham"),
            "--spam",
            str(corpus_dir / "spam"),
            *map(str, extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENVIRONMENT,
    )


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Poll CONDITION as fast as it goes until it holds; fail if PROCESS ends first."""
    deadline = time.monotonic() + TRAINING_TIMEOUT
    while not condition():
        if process.poll() is not None:
            problem = f"training ended (status {process.returncode}) before {what}"
            break
        if time.monotonic() > deadline:
            problem = f"no {what} within {TRAINING_TIMEOUT} s"
            break
    else:
        return
    # The pipes are closed here: left to the garbage collector, they fail
    # whichever later test it happens to run in.
    process.kill()
    process.wait(timeout=TRAINING_TIMEOUT)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    pytest.fail(problem)


class StderrLines:
    """The lines a process writes on stderr, collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    def text(self) -> str:
        self._thread.join(timeout=30)
        return "".join(self.lines)


def reading_fifo(process: subprocess.Popen[str], fifo: Path) -> Callable[[], bool]:
    """True once PROCESS has FIFO open: it then waits for a writer (Linux /proc)."""
    descriptors = Path(f"/proc/{process.pid}/fd")

    def check() -> bool:
        try:
            return any(os.readlink(link) == str(fifo) for link in descriptors.iterdir())
        except OSError:  # a descriptor closed while listed
            return False

    return check


def assert_interrupted_cleanly(
    process: subprocess.Popen[str],
    stderr: StderrLines,
    signal_number: int,
    model_dir: Path,
    before_files: dict[str, bytes],
    messages: Path,
    before_scores: str,
) -> None:
    """Send the signal, then check that PROCESS said "Aborted!" without a
    traceback and left MODEL_DIR exactly as it was, with no temporary folder."""
    process.send_signal(signal_number)
    process.wait(timeout=TRAINING_TIMEOUT)
    output = stderr.text()
    for stream in (process.stdout, process.stderr):
        assert stream is not None
        stream.close()

    assert process.returncode == 1, output
    assert spamcli_lines(output)[-1] == "Aborted!", output
    assert "Traceback" not in output
    assert listing(model_dir) == before_files
    assert staging_folders(model_dir) == []
    assert predict_output(model_dir, messages) == before_scores


@pytest.fixture
def heldout_messages(heldout_dir: Path) -> Path:
    return heldout_dir


@pytest.fixture(scope="module")
def fitting_corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus whose epochs last: one epoch over the 200 messages of
    corpus_dir takes 0.4 s, and training stops once an epoch does not
    improve, so a signal meant for the fit could find it ended. Over 1,200
    messages an epoch takes about 2.5 s (255 batches at 9 ms here)."""
    from conftest import write_corpus

    return write_corpus(tmp_path_factory.mktemp("fitting-corpus"), 600, 600, seed=3)


# --------------------------------------------------------------------------
# Interrupted training


PHASES = ["reading", "fitting", "saving"]
SIGNALS = [signal.SIGINT, signal.SIGTERM]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signal_number", SIGNALS, ids=lambda number: signal.Signals(number).name)
@pytest.mark.parametrize("phase", PHASES)
def test_no_lost_work_interrupted_training_keeps_the_previous_model(
    model_copy: Path,
    corpus_dir: Path,
    heldout_messages: Path,
    tmp_path: Path,
    phase: str,
    signal_number: int,
    request: pytest.FixtureRequest,
) -> None:
    before_files = listing(model_copy)
    before_scores = predict_output(model_copy, heldout_messages)
    extra: list[str | Path] = []
    if phase == "reading":
        fifo = tmp_path / "never-written.fifo"
        os.mkfifo(fifo)
        extra = ["--ham", fifo]  # named itself, a FIFO is read, and blocks
    elif phase == "fitting":
        corpus_dir = request.getfixturevalue("fitting_corpus_dir")

    process = start_training(model_copy, corpus_dir, *extra)
    stderr = StderrLines(process)
    if phase == "reading":
        wait_until(reading_fifo(process, fifo), process, "reading the FIFO")
    elif phase == "fitting":
        # The first epoch always improves on none, so the second begins;
        # the signal comes in the middle of it.
        wait_until(lambda: any("Epoch 2/" in line for line in stderr.lines), process, "epoch 2")
    else:
        wait_until(lambda: bool(staging_folders(model_copy)), process, "the temporary folder")
    assert_interrupted_cleanly(
        process, stderr, signal_number, model_copy, before_files, heldout_messages, before_scores
    )


@pytest.mark.slow
def test_no_lost_work_a_killed_training_leaves_the_model_and_its_leftovers_go_next_time(
    model_copy: Path, corpus_dir: Path, heldout_messages: Path
) -> None:
    before_files = listing(model_copy)
    before_scores = predict_output(model_copy, heldout_messages)
    process = start_training(model_copy, corpus_dir)
    stderr = StderrLines(process)
    wait_until(lambda: bool(staging_folders(model_copy)), process, "the temporary folder")
    process.kill()  # SIGKILL: no handler runs, nothing is cleaned up
    process.wait(timeout=TRAINING_TIMEOUT)
    stderr.text()
    for stream in (process.stdout, process.stderr):
        assert stream is not None
        stream.close()
    assert listing(model_copy) == before_files
    assert predict_output(model_copy, heldout_messages) == before_scores
    [leftover] = staging_folders(model_copy)

    # The kernel dropped the killed writer's lock; once the folder is old
    # enough, the next write removes it.
    old = time.time() - artifacts.ABANDONED_STAGING_SECONDS - 60
    os.utime(leftover, (old, old))
    retraining = start_training(model_copy, corpus_dir, epochs=1)
    _, errors = retraining.communicate(timeout=TRAINING_TIMEOUT)
    assert retraining.returncode == 0, errors
    assert staging_folders(model_copy) == []
    assert listing(model_copy) != before_files


@pytest.mark.parametrize("signal_number", SIGNALS, ids=lambda number: signal.Signals(number).name)
def test_no_lost_work_a_swallowed_interruption_is_still_honoured(
    model_copy: Path, signal_number: int
) -> None:
    # TensorFlow's C++ can clear the KeyboardInterrupt a signal handler
    # raised; contextlib.suppress imitates it here.
    before_files = listing(model_copy)
    before_handlers = [signal.getsignal(number) for number in SIGNALS]
    with interruption.interruptible():
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal_number)
        with pytest.raises(KeyboardInterrupt):
            interruption.check()
        with pytest.raises(KeyboardInterrupt):
            artifacts.write_model_dir(
                model_copy, lambda directory: (directory / "metadata.json").write_text("{}")
            )
    assert listing(model_copy) == before_files
    assert staging_folders(model_copy) == []
    interruption.check()  # the request ends with the work it interrupted
    assert [signal.getsignal(number) for number in SIGNALS] == before_handlers


@pytest.mark.parametrize("writer", ["write_npz", "write_npz_bytes"])
def test_no_lost_work_an_interruption_while_an_npz_is_written_waits_for_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    # A signal that lands inside zipfile.ZipFile's constructor once left a
    # half-made object whose __del__ printed a traceback; the writers hold
    # the interruption until their file is written, then raise it.
    import zipfile

    real_init = zipfile.ZipFile.__init__
    signalled: list[bool] = []

    def init_with_a_signal(self: zipfile.ZipFile, *args: object, **kwargs: object) -> None:
        signalled.append(True)
        signal.raise_signal(signal.SIGINT)  # the handler runs here, inside the constructor
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "__init__", init_with_a_signal)
    path = tmp_path / "weights.npz"
    with interruption.interruptible(), pytest.raises(KeyboardInterrupt):
        if writer == "write_npz":
            artifacts.write_npz(path, {"dense.bias": [0.5, 1.5]})
        else:
            data = b"\x00\x00\x00?\x00\x00\xc0?"  # 0.5 and 1.5, little-endian float32
            artifacts.write_npz_bytes(path, {"dense.bias": ("<f4", (2,), data)})
    assert signalled
    monkeypatch.undo()
    with zipfile.ZipFile(path) as archive:  # written whole before the interruption was raised
        assert archive.namelist() == ["dense.bias.npy"]
    interruption.check()  # the request ended with the block that held it


def test_no_lost_work_training_stops_at_a_batch_after_a_swallowed_interruption(
    model_copy: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import TINY_CONFIG

    from spamcli.training import train

    before_files = listing(model_copy)
    callers: list[str] = []
    original_check = interruption.check

    def recording_check() -> None:
        caller = sys._getframe(1).f_code.co_name
        callers.append(caller)
        if caller != "train":  # let the request reach the fit
            original_check()

    with interruption.interruptible():
        with contextlib.suppress(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        monkeypatch.setattr(interruption, "check", recording_check)
        with pytest.raises(KeyboardInterrupt):
            train(model_copy, sources=[corpus_dir], config=TINY_CONFIG)
    # Training checks once before the fit; then the first batch's check
    # (training's callback) stopped the fit, before the model writer's own.
    assert callers == ["train", "<lambda>"]
    assert listing(model_copy) == before_files
    assert staging_folders(model_copy) == []


# --------------------------------------------------------------------------
# Readers while the model is replaced


PREDICT_LOOPS = 8


@pytest.mark.slow
def test_no_lost_work_readers_always_see_a_complete_model(
    model_copy: Path, corpus_dir: Path, heldout_messages: Path, tmp_path: Path
) -> None:
    # The replacement is trained with the default settings, so its
    # buckets, layers and threshold all differ from the tiny model's: a
    # reader that mixed the files of the two would fail or score apart.
    one_message = sorted((heldout_messages / "spam").iterdir())[0]
    targets = [heldout_messages if number % 2 else one_message for number in range(PREDICT_LOOPS)]
    expected_lines = {
        heldout_messages: len(predict_output(model_copy, heldout_messages).splitlines()),
        one_message: 1,
    }
    outcomes: list[tuple[float, float, int, str, str]] = []
    finished = threading.Event()

    def loop(target: Path) -> None:
        while not finished.is_set():
            started = time.monotonic()
            completed = subprocess.run(
                [*SPAMCLI, "predict", "-m", str(model_copy), str(target)],
                capture_output=True,
                text=True,
                timeout=120,
                env=ENVIRONMENT,
            )
            outcomes.append(
                (started, time.monotonic(), completed.returncode, completed.stdout, str(target))
            )
            if completed.returncode != 0:
                outcomes.append((0.0, 0.0, -1, completed.stderr, str(target)))

    threads = [threading.Thread(target=loop, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    try:
        process = start_training(model_copy, corpus_dir, epochs=3)
        _, training_errors = process.communicate(timeout=TRAINING_TIMEOUT)
        replaced_at = time.monotonic()
        time.sleep(2)  # let every loop run once more on the new model
    finally:
        finished.set()
        for thread in threads:
            thread.join(timeout=180)

    assert process.returncode == 0, training_errors
    failures = [outcome for outcome in outcomes if outcome[2] != 0]
    assert failures == []
    for _, _, _, stdout, target in outcomes:
        assert len(stdout.splitlines()) == expected_lines[Path(target)], stdout
    assert any(started < replaced_at for started, *_ in outcomes)
    assert any(started > replaced_at for started, *_ in outcomes)
    from spamcli.config import TrainingConfig

    assert artifacts.read_metadata(model_copy)["features"]["bits"] == TrainingConfig().bits


# --------------------------------------------------------------------------
# A full disk


def test_no_lost_work_full_disk_keeps_the_previous_model(
    model_copy: Path, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = listing(model_copy)

    def full_disk(path: Path, arrays: object) -> None:
        path.write_bytes(b"half of an array")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(artifacts, "write_npz", full_disk)
    result = CliRunner().invoke(
        cli, ["train", "-q", "--epochs", "1", "-m", str(model_copy), str(corpus_dir)]
    )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: cannot save the model in {model_copy}: No space left on device; "
        "the previous model is unchanged (set by -m/--model)\n"
    )
    assert listing(model_copy) == before
    assert staging_folders(model_copy) == []


def limit_file_size() -> None:
    # Big enough for anything but the model's own files (kernel.npz of the
    # default settings is megabytes); Python ignores SIGXFSZ, so a write
    # past the limit fails with EFBIG instead of killing the process.
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@pytest.mark.slow
def test_no_lost_work_file_size_limit_keeps_the_previous_model(
    model_copy: Path, corpus_dir: Path, heldout_messages: Path
) -> None:
    before_files = listing(model_copy)
    before_scores = predict_output(model_copy, heldout_messages)

    completed = subprocess.run(
        [*SPAMCLI, "train", "-q", "--epochs", "1", "-m", str(model_copy), str(corpus_dir)],
        capture_output=True,
        text=True,
        timeout=TRAINING_TIMEOUT,
        env=ENVIRONMENT,
        preexec_fn=limit_file_size,
    )

    assert completed.returncode == 1
    assert completed.stdout == ""
    errors = [line for line in completed.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: cannot save the model in {model_copy}: File too large; "
        "the previous model is unchanged (set by -m/--model)"
    ], completed.stderr
    assert "Traceback" not in completed.stderr
    assert listing(model_copy) == before_files
    assert staging_folders(model_copy) == []
    assert predict_output(model_copy, heldout_messages) == before_scores


def test_no_lost_work_scorer_never_mixes_two_models(tmp_path: Path) -> None:
    # Two hand-made models with kernels of 2**8 and 2**9 buckets and layers
    # of 3 and 4 units, swapped by the same atomic exchange `train` uses,
    # every 20 ms, while the folder is loaded again and again: a scorer that
    # read its files from both models would fail its shape checks. Without
    # TensorFlow; 3 s.
    from conftest import write_synthetic_model

    from spamcli.artifacts import LayerSpec, NetworkSpec
    from spamcli.config import LearningRule
    from spamcli.errors import ModelError
    from spamcli.features import FeatureSpec
    from spamcli.online import Network
    from spamcli.scoring import Scorer

    model_dir = write_synthetic_model(tmp_path / "model")
    other_spec = NetworkSpec(
        FeatureSpec(bits=9, max_tokens=None),
        [LayerSpec("dense_0", 4, "relu"), LayerSpec("dense_1", 1, "sigmoid")],
    )
    other_dir = write_synthetic_model(
        tmp_path / "other", Network.from_scratch(other_spec, LearningRule(), seed=2)
    )
    stop = threading.Event()

    def keep_replacing() -> None:
        while not stop.is_set():
            artifacts._exchange(other_dir, model_dir)
            time.sleep(0.02)

    replacer = threading.Thread(target=keep_replacing)
    replacer.start()
    loads, errors = 0, []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            loads += 1
            try:
                scorer = Scorer(model_dir)
                # More than a light batch: NumPy reads the weights again.
                scores = scorer.score_texts(["cash prize"] * 20)
                assert len(scores) == 20
            except ModelError as error:
                errors.append(str(error))
    finally:
        stop.set()
        replacer.join()

    assert loads > 100
    assert errors == []


# --------------------------------------------------------------------------
# Interrupted learning


LEARNING_PHASES = ["reading", "saving"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signal_number", SIGNALS, ids=lambda number: signal.Signals(number).name)
@pytest.mark.parametrize("phase", LEARNING_PHASES)
def test_no_lost_work_interrupted_learning_keeps_the_previous_model(
    model_copy: Path, heldout_messages: Path, tmp_path: Path, phase: str, signal_number: int
) -> None:
    before_files = listing(model_copy)
    before_scores = predict_output(model_copy, heldout_messages)
    paths: list[Path] = sorted((heldout_messages / "spam").iterdir())[:3]
    if phase == "reading":
        fifo = tmp_path / "never-written.fifo"
        os.mkfifo(fifo)
        paths.append(fifo)  # named itself, a FIFO is read, and blocks

    process = subprocess.Popen(
        [*SPAMCLI, "learn", "--spam", "-m", str(model_copy), *map(str, paths)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENVIRONMENT,
    )
    stderr = StderrLines(process)
    if phase == "reading":
        wait_until(reading_fifo(process, fifo), process, "reading the FIFO")
    else:
        wait_until(lambda: bool(staging_folders(model_copy)), process, "the temporary folder")
    assert_interrupted_cleanly(
        process, stderr, signal_number, model_copy, before_files, heldout_messages, before_scores
    )
