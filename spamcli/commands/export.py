"""spamcli export: a model folder as a TensorFlow SavedModel for TF Serving."""

from __future__ import annotations

from pathlib import Path

import click

from spamcli.commands.options import fail, model_option
from spamcli.errors import SpamcliError


@click.command("export")
@model_option
@click.option(
    "--saved-model",
    "saved_model_dir",
    type=click.Path(path_type=Path),
    metavar="DIR",
    required=True,
    help="Write the model as a TensorFlow SavedModel in DIR (new or empty), e.g. "
    "models/spamcli/1 for TF Serving's version folders.",
)
def export_command(model_dir: Path, saved_model_dir: Path) -> None:
    """Export the model's current network (with what `spamcli learn` has
    changed) as a TensorFlow SavedModel that TF Serving can load.

    Its signature takes each message's buckets, not the message: spamcli
    tokenizes and hashes (spamcli.saved_model.serving_buckets), the server
    scores. See docs/tf-serving.md.
    """
    from spamcli import extras
    from spamcli import quiet as quieting

    try:
        extras.require("spamcli export", "train", extras.TRAINING_MODULES)
    except SpamcliError as error:
        fail(error)
    quieting.import_tensorflow()
    from spamcli.saved_model import SIGNATURE, export_saved_model

    try:
        report = export_saved_model(model_dir, saved_model_dir)
    except SpamcliError as error:
        fail(error)
    click.echo(
        f"exported {model_dir} ({report.buckets} buckets, {report.layers} layers, "
        f"{report.changed_rows} rows changed by learning) as signature {SIGNATURE}"
    )
    click.echo(f"saved {report.saved_model_dir}")
