"""Which optional packages a command needs, and the extra that installs them.

`pip install spamcli` is the light install: click and NumPy, enough for
predict, filter, sort, info, check and learn. Training needs TensorFlow,
Keras and scikit-learn (the validation figures' ROC AUC),
`pip install 'spamcli[train]'`;
evaluate needs scikit-learn (ROC AUC) and, for --plots, matplotlib,
`pip install 'spamcli[evaluate]'`. A command checks for what it needs before
it reads any mail, with importlib.util.find_spec, which looks for a package
without importing it (TensorFlow's import alone takes 5 s).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from spamcli.errors import MissingExtraError

# Import name -> the name a user knows the package by.
PACKAGE_NAMES = {
    "tensorflow": "TensorFlow",
    "keras": "Keras",
    "sklearn": "scikit-learn",
    "matplotlib": "matplotlib",
}
# Import name -> the smallest extra that installs it.
EXTRA_OF_MODULE = {
    "tensorflow": "train",
    "keras": "train",
    "sklearn": "evaluate",
    "matplotlib": "evaluate",
}
TRAINING_MODULES = ("tensorflow", "keras", "sklearn")
EVALUATION_MODULES = ("sklearn",)
PLOTTING_MODULES = ("sklearn", "matplotlib")


def is_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(command: str, extra: str, modules: Iterable[str]) -> None:
    """Raise MissingExtraError, naming the extra to install, unless every
    one of MODULES can be imported."""
    missing = [module for module in modules if not is_installed(module)]
    if missing:
        raise missing_extra(command, extra, missing)


def missing_extra(command: str, extra: str, modules: Iterable[str]) -> MissingExtraError:
    names = [PACKAGE_NAMES.get(module, module) for module in modules]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "is" if len(names) == 1 else "are"
    return MissingExtraError(
        f"{command} needs {listed}, which {verb} not installed: pip install 'spamcli[{extra}]'"
    )


def from_import_error(command: str, error: ImportError) -> MissingExtraError | None:
    """The MissingExtraError for an ImportError of an optional package, or
    None for any other import error (a bug, not a missing extra)."""
    module = (getattr(error, "name", None) or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    return None if extra is None else missing_extra(command, extra, [module])
