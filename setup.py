"""The one part of the packaging setup.cfg cannot declare: the built-in model.

The model stays in the repository's top-level models/default/, where it is
trained, reviewed and documented; the build maps models/ into the package
as spamcli.models, so wheels and installs carry it as
spamcli/models/default/ and spamcli.locations finds it there with
importlib.resources. Every file of the folder is taken, whatever it is
called, so a new model format needs no change here; what `spamcli evaluate`
and `spamcli learn` may leave in a checkout's copy is not.
Everything else is in setup.cfg.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["spamcli", "spamcli.*"]), "spamcli.models"],
    package_dir={"spamcli.models": "models"},
    package_data={"spamcli.models": ["default/*", "default/**/*"]},
    exclude_package_data={
        "spamcli.models": [
            "default/evaluations.jsonl",
            "default/learned.jsonl",
            "default/.*",
            "default/**/.*",
        ]
    },
)
