"""spamcli serve: a daemon that speaks spamd, HTTP (rspamd's shape) and milter."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from spamcli.commands.options import (
    checked_by,
    cutoff_options,
    fail,
    limit_blas_threads,
    model_option,
)
from spamcli.errors import SpamcliError
from spamcli.server.syslog_lines import DEFAULT_SOCKET as DEFAULT_SYSLOG_SOCKET
from spamcli.server.syslog_lines import FACILITIES as SYSLOG_FACILITIES


def _octal_mode(context: click.Context, parameter: click.Parameter, value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an octal mode such as 0660") from None
    if not 0 <= mode <= 0o777:
        raise click.BadParameter(f"{value!r} is not a file mode (0000 to 0777)")
    return mode


@click.command(name="serve")
@model_option
@cutoff_options
@click.option(
    "--listen",
    metavar="HOST:PORT",
    default=None,
    help="Answer the spamd protocol (spamc, Exim) on this TCP address.  "
    "[default: 127.0.0.1:783 when no other listener is given]",
)
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Answer the spamd protocol on this Unix socket (spamc -U PATH).",
)
@click.option(
    "--socket-mode",
    default="0660",
    show_default=True,
    callback=_octal_mode,
    help="File mode of the Unix sockets created (--socket, --milter unix:).",
)
@click.option(
    "--http",
    metavar="HOST:PORT",
    default=None,
    help="Answer HTTP in rspamd's shape (POST /checkv2, /learnspam, /learnham; GET /ping, "
    "/metrics) on this address, e.g. 127.0.0.1:11333.",
)
@click.option(
    "--milter",
    metavar="inet:PORT@HOST|unix:PATH",
    default=None,
    help="Be a milter for Postfix or Sendmail on this libmilter connection, "
    "e.g. inet:11332@127.0.0.1.",
)
@click.option(
    "--milter-on-error",
    type=click.Choice(["accept", "tempfail"]),
    default="accept",
    show_default=True,
    help="What the milter does with a message it cannot classify: accept it unchanged, "
    "or refuse it with 451 so that the sender tries again.",
)
@click.option(
    "--reject-above",
    metavar="P",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Milter: reject at the end of data, with 550, a message whose spam probability "
    "is P or more (HTTP: action 'reject').  [default: never reject]",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes answering spamd and HTTP, each with the model loaded "
    "(one per core is the most that helps).",
)
@click.option(
    "-A",
    "--allowed-ips",
    multiple=True,
    metavar="ADDRESSES",
    help="Clients that may connect, as spamd's -A: addresses and ranges, comma-separated "
    "or repeated (10.0.0.0/8, 192.168.1., ::1). Required to listen on any address but "
    "loopback.  [default: 127.0.0.1 and ::1]",
)
@click.option(
    "--allow-tell",
    is_flag=True,
    help="Let clients change the model: spamd TELL (spamc -L spam|ham|forget) and "
    "HTTP /learnspam, /learnham.",
)
@click.option(
    "--header-prefix",
    default="X-Spam-",
    show_default=True,
    callback=checked_by("spamcli.filtering", "check_header_prefix"),
    help="Prefix of the three header fields added, as for filter.",
)
@click.option(
    "--subject-tag",
    metavar="TEXT",
    default=None,
    callback=checked_by("spamcli.filtering", "check_subject_tag"),
    help="Put TEXT (e.g. '[SPAM]') before the Subject of spam, as filter does.",
)
@click.option(
    "--max-size",
    type=click.IntRange(1),
    default=500 * 1024,
    show_default=True,
    metavar="BYTES",
    help="Larger messages are answered unscanned (spamc's own limit is 500 KiB).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Connections served at once; more wait in the listen queue.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(0.0, min_open=True),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Close a connection silent for this long (before or within a request).",
)
@click.option(
    "--read-timeout",
    type=click.FloatRange(0.0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="A whole request must arrive within this long.",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(0.0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM, how long the requests in flight may take to finish.",
)
@click.option(
    "--syslog",
    "syslog_facility",
    type=click.Choice(list(SYSLOG_FACILITIES)),
    default=None,
    metavar="FACILITY",
    help="Send the log lines to syslog with this facility (mail, daemon, user, "
    "local0 to local7) instead of stderr.",
)
@click.option(
    "--syslog-socket",
    metavar="PATH",
    default=None,
    help=f"The syslog socket, with --syslog.  [default: {DEFAULT_SYSLOG_SOCKET}]",
)
@click.option(
    "--check",
    is_flag=True,
    help="Check the configuration (load the model, read the addresses), print what "
    "would be served, and exit.",
)
def serve_command(
    model_dir: Path,
    threshold: float | None,
    ham_cutoff: float | None,
    listen: str | None,
    socket_path: Path | None,
    socket_mode: int,
    http: str | None,
    milter: str | None,
    milter_on_error: str,
    reject_above: float | None,
    workers: int,
    allowed_ips: tuple[str, ...],
    allow_tell: bool,
    header_prefix: str,
    subject_tag: str | None,
    max_size: int,
    max_connections: int,
    idle_timeout: float,
    read_timeout: float,
    shutdown_timeout: float,
    syslog_facility: str | None,
    syslog_socket: str | None,
    check: bool,
) -> None:
    """Serve the model as a daemon: spamd protocol, HTTP and milter.

    One long-running process loads the model once and answers spamc, Exim
    (spamd protocol), HTTP clients in rspamd's shape, and Postfix or
    Sendmail (milter) on every listener given; with no listener option, the
    spamd protocol on 127.0.0.1:783. Scores are in points: the model's spam
    cut-off is 5.0, and one point more is twice the odds of spam, so
    'spamc -c' exits 1 exactly for spam. Messages are marked with the
    fields filter adds. SIGHUP (or a replaced model folder) reloads the
    model; SIGTERM finishes the requests in flight, then exits. One line
    per message goes to stderr (or syslog). See docs/serve.md.
    """
    limit_blas_threads()
    config = _config(
        model_dir,
        threshold,
        ham_cutoff,
        listen=listen,
        socket_path=socket_path,
        socket_mode=socket_mode,
        http=http,
        milter=milter,
        milter_on_error=milter_on_error,
        reject_above=reject_above,
        workers=workers,
        allowed_ips=allowed_ips,
        allow_tell=allow_tell,
        header_prefix=header_prefix,
        subject_tag=subject_tag,
        max_size=max_size,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
        read_timeout=read_timeout,
        shutdown_timeout=shutdown_timeout,
        syslog_facility=syslog_facility,
        syslog_socket=syslog_socket,
    )
    from spamcli.server import daemon

    try:
        if check:
            for line in daemon.describe(config):
                click.echo(line)
            return
        status = daemon.serve(config)
    except SpamcliError as error:
        fail(error)
    sys.exit(status)


def _config(
    model_dir: Path, threshold: float | None, ham_cutoff: float | None, **options: Any
) -> Any:
    """The daemon's configuration from the options; usage errors for the
    options that cannot work together, before anything starts."""
    from spamcli.server import daemon
    from spamcli.server.core import Limits, ScanSettings

    if threshold is not None and ham_cutoff is not None and ham_cutoff > threshold:
        raise click.UsageError(
            f"the ham cut-off {ham_cutoff} must not be above the spam cut-off {threshold}"
        )
    listen, http, milter = options["listen"], options["http"], options["milter"]
    socket_path = options["socket_path"]
    if not (listen or socket_path or http or milter):
        listen = f"127.0.0.1:{daemon.DEFAULT_SPAMD_PORT}"
    try:
        spamd_address = daemon.parse_address(listen, daemon.DEFAULT_SPAMD_PORT) if listen else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--listen") from None
    try:
        http_address = daemon.parse_address(http, daemon.DEFAULT_HTTP_PORT) if http else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--http") from None
    try:
        milter_connection = daemon.parse_milter(milter) if milter else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--milter") from None
    allowed = daemon.LOOPBACK_NETWORKS
    if options["allowed_ips"]:
        try:
            allowed = daemon.parse_allowed_ips(options["allowed_ips"])
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--allowed-ips") from None
    if socket_path is not None and not socket_path.is_absolute():
        socket_path = socket_path.absolute()
    if options["syslog_socket"] is not None and options["syslog_facility"] is None:
        raise click.UsageError("--syslog-socket needs --syslog FACILITY")
    try:
        limits = Limits(
            max_message_bytes=options["max_size"],
            max_connections=options["max_connections"],
            idle_timeout=options["idle_timeout"],
            read_timeout=options["read_timeout"],
            shutdown_timeout=options["shutdown_timeout"],
        )
        settings = ScanSettings(
            model_dir=model_dir,
            spam_cutoff=threshold,
            ham_cutoff=ham_cutoff,
            header_prefix=options["header_prefix"],
            subject_tag=options["subject_tag"],
            reject_above=options["reject_above"],
            allow_learning=options["allow_tell"],
        )
        config = daemon.ServeConfig(
            settings=settings,
            limits=limits,
            spamd_address=spamd_address,
            spamd_socket=socket_path,
            socket_mode=options["socket_mode"],
            http_address=http_address,
            milter=milter_connection,
            milter_on_error=options["milter_on_error"],
            workers=options["workers"],
            allowed_networks=allowed,
            syslog_facility=options["syslog_facility"],
            syslog_socket=options["syslog_socket"] or DEFAULT_SYSLOG_SOCKET,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        daemon.check_listeners(config, allowed_given=bool(options["allowed_ips"]))
    except SpamcliError as error:
        raise click.UsageError(str(error)) from None
    return config
