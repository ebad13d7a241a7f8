"""spamcli check: is the set-up able to filter mail?"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from spamcli.commands.options import format_option, limit_blas_threads, model_location, model_option


@click.command()
@model_option
@format_option
def check(model_dir: Path, output_format: str) -> None:
    """Check the set-up end to end, as `spamcli filter` would use it.

    One line per step on stdout, 'ok' or 'FAILED', the step and what was
    found: the model folder is found (and why it is the one in use), it
    loads, it scores a test message, its cut-offs make sense, and scoring
    needs no TensorFlow. Exit status 0 when every step passed, 1 otherwise.
    Run it as the user the mail filter runs as, with the same -m or
    $SPAMCLI_MODEL.
    """
    limit_blas_threads()
    from spamcli.checking import check_setup

    checks = check_setup(model_location(model_dir))
    if output_format == "json":
        click.echo(
            json.dumps(
                {
                    "usable": all(step.passed for step in checks),
                    "checks": [
                        {"name": step.name, "passed": step.passed, "detail": step.detail}
                        for step in checks
                    ],
                },
                indent=2,
            )
        )
    else:
        for step in checks:
            click.echo(f"{'ok' if step.passed else 'FAILED':<6}  {step.name:<10}  {step.detail}")
    if not all(step.passed for step in checks):
        sys.exit(1)
