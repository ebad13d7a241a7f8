"""Where the model is: the folder each command reads, and the one it may write.

The model folder is chosen in this order:

1. ``-m DIR`` / ``--model DIR``;
2. ``$SPAMCLI_MODEL``, for a mail server's system-wide model
   (``/var/lib/spamcli/model``, see docs/model-folder.md) or a user's
   procmail recipe;
3. the user model, ``$XDG_DATA_HOME/spamcli/model`` (by default
   ``~/.local/share/spamcli/model``), if it exists;
4. the built-in model, shipped inside the package and read-only.

``train`` and ``learn`` never write into the built-in model: ``train``
without ``-m`` writes the user model, and ``learn`` on the built-in model
first copies it there (``writable_model``). The built-in model lives in the
repository's top-level ``models/default/``; the build maps that folder into
the package as ``spamcli/models/default/`` (see setup.py), and it is found
with importlib.resources. A checkout run without installing has no mapped
copy, so the repository's folder is used there.

Nothing here reads a model: resolving a location checks at most whether the
user model exists, so a mail filter with a broken model still starts, finds
out when it loads the model, and passes the message on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from spamcli.errors import ModelError

MODEL_VARIABLE = "SPAMCLI_MODEL"
# The system-wide model a mail server's filters share, given to them with
# $SPAMCLI_MODEL; documented, never chosen on its own.
SYSTEM_MODEL_DIR = Path("/var/lib/spamcli/model")

# Where the folder came from, in the order of the list above.
OPTION = "option"
ENVIRONMENT = "environment"
USER = "user"
BUILTIN = "builtin"
ORIGINS = (OPTION, ENVIRONMENT, USER, BUILTIN)

# The package resource that holds the built-in model, and the repository
# folder it is built from.
PACKAGE = "spamcli"
BUILTIN_RESOURCE = ("models", "default")
REPOSITORY_DIR = Path(__file__).resolve().parent.parent
REPOSITORY_BUILTIN_DIR = REPOSITORY_DIR / "models" / "default"


@dataclass(frozen=True)
class ModelLocation:
    """A model folder and why it was chosen."""

    path: Path
    origin: str  # one of ORIGINS

    @property
    def read_only(self) -> bool:
        return self.origin == BUILTIN or is_builtin_model(self.path)

    @property
    def culprit(self) -> str:
        """What chose it, for the end of an error message: the option or the
        variable at fault, or the kind of model."""
        return {
            OPTION: "set by -m/--model",
            ENVIRONMENT: f"set by ${MODEL_VARIABLE}",
            USER: "the user model",
            BUILTIN: "the built-in model",
        }[self.origin]

    def reason(self) -> str:
        """Why this folder is the one in use, for `spamcli info` and `check`."""
        if self.origin == OPTION:
            return "given with -m/--model"
        if self.origin == ENVIRONMENT:
            return f"given with ${MODEL_VARIABLE}"
        if self.origin == USER:
            return "the user model (no -m/--model, no $SPAMCLI_MODEL)"
        return (
            f"the built-in model, read-only (no -m/--model, no ${MODEL_VARIABLE}, "
            f"no user model at {user_model_dir()})"
        )


def builtin_model_dir() -> Path:
    """The built-in model's folder: the package resource where spamcli is
    installed, else (a checkout run in place) the repository's models/default.

    For a package installed as files, importlib.resources gives the
    package's own folder, so that is looked at first: importing
    importlib.resources (and tempfile and shutil with it) cost 9 ms of a
    70 ms `predict` here. It answers for any other kind of install.
    """
    installed = Path(__file__).resolve().parent.joinpath(*BUILTIN_RESOURCE)
    if installed.is_dir():
        return installed
    # setup.cfg tells a checkout from a site-packages folder, where a
    # models/default/ beside the package would be some other package's.
    if (REPOSITORY_DIR / "setup.cfg").is_file() and REPOSITORY_BUILTIN_DIR.is_dir():
        return REPOSITORY_BUILTIN_DIR
    import importlib.resources

    resource = importlib.resources.files(PACKAGE).joinpath(*BUILTIN_RESOURCE)
    # A package on the file system gives a real path; the scorer memory-maps
    # the weights, so a resource inside a zip archive would need extracting.
    if isinstance(resource, Path) and resource.is_dir():
        return resource
    if isinstance(resource, Path):
        return resource  # missing: loading it says so
    raise ModelError(
        "the built-in model is inside a zip archive and cannot be read from there; "
        f"give a model folder with -m/--model or ${MODEL_VARIABLE}"
    )


def user_model_dir(environment: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME/spamcli/model, by default ~/.local/share/spamcli/model.
    A relative XDG_DATA_HOME is ignored, as the XDG specification says."""
    environment = os.environ if environment is None else environment
    data_home = environment.get("XDG_DATA_HOME", "")
    if not data_home or not os.path.isabs(data_home):
        home = environment.get("HOME") or os.path.expanduser("~")
        data_home = os.path.join(home, ".local", "share")
    return Path(data_home) / "spamcli" / "model"


def resolve_model(
    option: str | os.PathLike[str] | None, environment: Mapping[str, str] | None = None
) -> ModelLocation:
    """The model folder to use and why (see the module's docstring). Never
    raises and never reads the folder: an empty option or variable counts
    as not given."""
    environment = os.environ if environment is None else environment
    if option is not None and str(option):
        return ModelLocation(Path(option), OPTION)
    variable = environment.get(MODEL_VARIABLE, "")
    if variable:
        return ModelLocation(Path(variable), ENVIRONMENT)
    user_dir = user_model_dir(environment)
    # Exists, not "is a good model": a broken user model is reported as
    # such, not silently replaced by the built-in one.
    if os.path.lexists(user_dir):
        return ModelLocation(user_dir, USER)
    try:
        return ModelLocation(builtin_model_dir(), BUILTIN)
    except ModelError:
        return ModelLocation(REPOSITORY_BUILTIN_DIR, BUILTIN)


def is_builtin_model(model_dir: str | os.PathLike[str]) -> bool:
    """Whether MODEL_DIR is the built-in model's folder, by any path to it."""
    try:
        builtin = builtin_model_dir()
        return os.path.samefile(model_dir, builtin)
    except (OSError, ModelError):
        return False


def _kind_of(path: Path) -> str:
    """What a path that is no folder is, for a message: "a file", "a FIFO"..."""
    from spamcli import artifacts

    try:
        return artifacts.file_kind(path.stat().st_mode)
    except OSError:
        return "a broken symbolic link"


def check_model_dir(location: ModelLocation) -> None:
    """Refuse, with a message naming where the path came from, a model path
    that is no folder or cannot be read; the model's own files are checked
    when it is loaded (artifacts.read_metadata)."""
    path = location.path
    if not os.path.lexists(path):
        if location.origin == BUILTIN:
            raise ModelError(f"the built-in model is missing from this installation ({path})")
        raise ModelError(f"no model folder at {path} ({location.culprit})")
    if not path.is_dir():
        raise ModelError(f"{path} is {_kind_of(path)}, not a model folder ({location.culprit})")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ModelError(
            f"cannot read the model folder {path}: permission denied ({location.culprit})"
        )


def training_target(location: ModelLocation) -> Path:
    """The folder `train` writes: the one given with -m or $SPAMCLI_MODEL,
    else the user model. The built-in model is refused, by any path."""
    if location.origin in (USER, BUILTIN):
        return user_model_dir()
    if is_builtin_model(location.path):
        raise ModelError(
            f"{location.path} is the built-in model, which is read-only; "
            f"train into another folder ({location.culprit})"
        )
    return location.path


@dataclass(frozen=True)
class WritableModel:
    """The folder a change to a model goes into."""

    path: Path
    copied_from: Path | None = None
    """The built-in model, when it was just copied to ``path``."""


def writable_model(
    model_dir: str | os.PathLike[str], environment: Mapping[str, str] | None = None
) -> WritableModel:
    """The folder to write a change of MODEL_DIR into (learn's corrections).

    MODEL_DIR itself, unless it is the built-in model, which is read-only:
    then the user model, which is made as a copy of the built-in one first
    if it does not exist yet. A user model that exists is never replaced by
    the copy. The copy is written like any model folder (atomically, with
    the usual permissions), with every file of the built-in folder, whatever
    they are called, so it follows the model format.
    """
    if not is_builtin_model(model_dir):
        return WritableModel(Path(model_dir))
    from spamcli import artifacts

    builtin = Path(model_dir)
    target = user_model_dir(environment)
    # The lock `spamcli learn` takes on the folder: two first learns at once
    # make one copy, and the second learns into it.
    with artifacts.model_lock(target):
        if os.path.lexists(target):
            return WritableModel(target)
        _copy_model(builtin, target)
    return WritableModel(target, copied_from=builtin)


def _copy_model(source: Path, target: Path) -> None:
    import shutil

    from spamcli import artifacts

    def copy_contents(staging: Path) -> None:
        # copyfile, not copy2: the copy gets the usual permissions for the
        # umask, not the read-only modes an installed package may have.
        shutil.copytree(source, staging, dirs_exist_ok=True, copy_function=shutil.copyfile)

    try:
        artifacts.write_model_dir(target, copy_contents)
    except OSError as error:
        raise ModelError(
            f"cannot copy the built-in model to {target}: {error.strerror or error}"
        ) from None
