"""spamcli installed like a real tool: built, installed in a fresh virtual
environment with only click and NumPy beside it, and run from a folder
outside the checkout.

The wheel and the source distribution are built with setuptools' PEP 517
hooks from a copy of the checkout's files (so the build leaves nothing in
the checkout), the wheel again from the unpacked source distribution (so
the sdist carries the built-in model too). The fresh environment gets the
running environment's click and NumPy by symbolic links rather than from
a package index: the test needs no network, and the environment holds
nothing else, so a command that needs TensorFlow, Keras or scikit-learn
shows what a light install does. About 15 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPOSITORY_DIR = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPOSITORY_DIR / "data" / "samples"
TIMEOUT = 300
# What a light install may hold beside spamcli: click, NumPy and their own files.
LIGHT_PACKAGES = ("click", "numpy")
BUILT_SUFFIXES = (".whl", ".tar.gz")


def repository_files() -> list[str]:
    """The checkout's files as git sees them: tracked, and new ones not ignored."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPOSITORY_DIR,
        capture_output=True,
        check=True,
        timeout=TIMEOUT,
    )
    names = [name for name in listing.stdout.decode().split("\0") if name]
    return [name for name in names if (REPOSITORY_DIR / name).is_file()]


def build(source_dir: Path, out_dir: Path, *kinds: str) -> list[Path]:
    """Build with setuptools' PEP 517 hooks, in SOURCE_DIR, into OUT_DIR."""
    hooks = "; ".join(f"print(build_meta.build_{kind}({str(out_dir)!r}))" for kind in kinds)
    completed = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; {hooks}"],
        cwd=source_dir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # The hooks print the build's log too; each returns its file's name.
    return [out_dir / line for line in completed.stdout.split() if line.endswith(BUILT_SUFFIXES)]


def site_packages(python: Path) -> Path:
    completed = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    )
    return Path(completed.stdout.strip())


def link_light_packages(target: Path) -> None:
    """Symbolic links to this environment's click and NumPy (packages, their
    bundled libraries and their metadata) in TARGET."""
    source = site_packages(Path(sys.executable))
    for entry in source.iterdir():
        name = entry.name.lower()
        if any(
            name == package or name.startswith((f"{package}-", f"{package}."))
            for package in LIGHT_PACKAGES
        ):
            (target / entry.name).symlink_to(entry)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and sdist built from a copy of the checkout, and the wheel
    built again from the unpacked sdist."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    for name in repository_files():
        destination = source / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY_DIR / name, destination)
    dist = work / "dist"
    dist.mkdir()
    sdist, wheel = build(source, dist, "sdist", "wheel")
    unpacked = work / "unpacked"
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    from_sdist = work / "from-sdist"
    from_sdist.mkdir()
    (wheel_from_sdist,) = build(next(unpacked.iterdir()), from_sdist, "wheel")
    return {"sdist": sdist, "wheel": wheel, "wheel_from_sdist": wheel_from_sdist}


@pytest.fixture(scope="module")
def light_install(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel, click and NumPy only;
    returns its bin folder."""
    venv = tmp_path_factory.mktemp("light") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT
    )
    python = venv / "bin" / "python"
    link_light_packages(site_packages(python))
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(built["wheel"]),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert install.returncode == 0, install.stderr
    return venv / "bin"


def run_installed(
    bin_dir: Path, home: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The installed spamcli, run from HOME (outside the checkout), with a
    HOME and data folder of its own and nothing of the checkout's on its path."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "SPAMCLI_MODEL", "VIRTUAL_ENV")
    }
    environment.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        PATH=f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}",
    )
    return subprocess.run(
        [str(bin_dir / "spamcli"), *args],
        cwd=home,
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT,
        env=environment,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A folder outside the checkout, with a copy of the samples in it."""
    shutil.copytree(SAMPLES_DIR, tmp_path / "data" / "samples")
    return tmp_path


def model_files(archive_names: list[str], prefix: str) -> set[str]:
    return {name.removeprefix(prefix) for name in archive_names if name.startswith(prefix)}


def test_packaging_wheel_and_sdist_carry_every_file_of_the_built_in_model(
    built: dict[str, Path],
) -> None:
    expected = {
        path.name
        for path in (REPOSITORY_DIR / "models" / "default").iterdir()
        if path.is_file() and not path.name.startswith(".")
    } - {"evaluations.jsonl", "learned.jsonl"}
    for kind in ("wheel", "wheel_from_sdist"):
        with zipfile.ZipFile(built[kind]) as wheel:
            names = wheel.namelist()
        assert model_files(names, "spamcli/models/default/") == expected, kind
        assert any(name.endswith("/LICENSE") for name in names), kind
    with tarfile.open(built["sdist"]) as sdist:
        names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    assert model_files(names, "models/default/") == expected
    assert "LICENSE" in names


def test_packaging_light_install_has_only_click_and_numpy(light_install: Path) -> None:
    completed = subprocess.run(
        [
            # -I: neither the environment's PYTHON* variables nor the current
            # folder (a checkout's spamcli.egg-info) on the path.
            str(light_install / "python"),
            "-I",
            "-c",
            "import importlib.metadata as m; print(sorted(d.metadata['Name'].lower() "
            "for d in m.distributions()))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    )
    assert completed.stdout.strip() == "['click', 'numpy', 'spamcli']"


# The light install's budget: a fresh venv's site-packages with spamcli,
# click and NumPy. The venv's own pip and setuptools are not in the test's
# venv (--without-pip); they took 27 MB in one made with `python3 -m venv`
# (Python 3.11.7, pip 23.2.1, setuptools 65.5.0), added here.
LIGHT_INSTALL_LIMIT_BYTES = 150 * 1000 * 1000
VENV_OWN_TOOLS_BYTES = 27 * 1000 * 1000


def tree_bytes(folder: Path) -> int:
    """Bytes of the files under FOLDER, through symbolic links, as du -L counts."""
    total = 0
    for root, _folders, files in os.walk(folder, followlinks=True):
        for name in files:
            total += os.stat(os.path.join(root, name)).st_size
    return total


def test_packaging_light_install_fits_in_150_mb(light_install: Path) -> None:
    # A built-in model of 2**20 buckets (68 MiB) took it to 168 MB; with
    # 2**19 (34 MiB), 133 MB.
    installed = tree_bytes(site_packages(light_install / "python"))

    assert installed + VENV_OWN_TOOLS_BYTES <= LIGHT_INSTALL_LIMIT_BYTES, (
        f"{(installed + VENV_OWN_TOOLS_BYTES) / 1e6:.0f} MB"
    )


def test_packaging_installed_predict_and_filter_use_the_packaged_model(
    light_install: Path, home: Path
) -> None:
    sample = home / "data" / "samples" / "spam-prize.eml"

    predicted = run_installed(light_install, home, "predict", "data/samples/spam-prize.eml")
    filtered = run_installed(light_install, home, "filter", stdin=sample.read_bytes())
    info = run_installed(light_install, home, "info", "--format", "json")
    checked = run_installed(light_install, home, "check")

    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.decode().split()[0] == "spam"
    assert predicted.stdout.decode().split()[2] == "data/samples/spam-prize.eml"
    assert filtered.returncode == 0, filtered.stderr
    assert filtered.stdout.startswith(b"X-Spam-Flag: YES\n")
    assert filtered.stdout.endswith(sample.read_bytes())
    assert info.returncode == 0, info.stderr
    model_dir = Path(json.loads(info.stdout)["model_dir"])
    assert model_dir.parts[-4:] == ("site-packages", "spamcli", "models", "default")
    assert model_dir.is_relative_to(light_install.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert b"not installed; only train needs it" in checked.stdout


def test_packaging_light_install_names_the_extra_for_train_and_evaluate(
    light_install: Path, home: Path
) -> None:
    samples = "data/samples"

    trained = run_installed(light_install, home, "train", "--ham", samples, "--spam", samples)
    evaluated = run_installed(light_install, home, "evaluate", "--ham", samples)

    assert trained.returncode == 1
    assert trained.stdout == b""
    assert trained.stderr.decode().splitlines() == [
        "Error: spamcli train needs TensorFlow, Keras and scikit-learn, which are not "
        "installed: pip install 'spamcli[train]'"
    ]
    assert evaluated.returncode == 1
    assert evaluated.stderr.decode().splitlines() == [
        "Error: spamcli evaluate needs scikit-learn, which is not installed: "
        "pip install 'spamcli[evaluate]'"
    ]
    assert not (home / "data" / "spamcli").exists()


def test_packaging_light_install_learn_copies_the_built_in_model_first(
    light_install: Path, home: Path
) -> None:
    learned = run_installed(light_install, home, "learn", "--spam", "data/samples/spam-pills.eml")

    user_model = home / "data" / "spamcli" / "model"
    stderr = learned.stderr.decode()
    assert f"copied it to {user_model}" in stderr
    assert (user_model / "metadata.json").is_file()
    assert learned.returncode == 0, stderr
    after = run_installed(light_install, home, "info", "--format", "json")
    assert Path(json.loads(after.stdout)["model_dir"]) == user_model
