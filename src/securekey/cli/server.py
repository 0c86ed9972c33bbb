"""``server`` and ``version``: run the API server, print the version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from securekey import __version__
from securekey.cli.context import (
    DatabaseUrlOption,
    DataDirOption,
    JsonOption,
    server_module,
    use,
)
from securekey.cli.errors import CliError
from securekey.cli.tokens import DescriptionOption, show_new_token
from securekey.exceptions import SecureKeyError

__all__ = ["register"]


server_app = typer.Typer(name="server")
operator_token_app = typer.Typer(
    name="operator-token",
    help="Operator tokens straight in the database, for when every token is lost.",
    no_args_is_help=True,
)


def _server_module() -> Any:
    return server_module("securekey.api.serve", "The server")


HostOption = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOption = Annotated[int, typer.Option("--port", help="Port to listen on.")]
IntervalOption = Annotated[
    float, typer.Option("--scheduler-interval", help="Seconds between due-rotation checks.")
]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]
ForwardedOption = Annotated[
    str,
    typer.Option(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="Comma-separated proxy addresses whose X-Forwarded-For/-Proto are believed "
        "('*' for any). Default: none, so the failed-auth limit counts the connecting "
        "address and no client can pick its own.",
    ),
]
StreamsPerTokenOption = Annotated[
    int, typer.Option("--max-streams-per-token", min=1, help="Open config streams per token.")
]
StreamsOption = Annotated[
    int, typer.Option("--max-streams", min=1, help="Open config streams in all (per worker).")
]
TlsCertOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        envvar="SECUREKEY_TLS_CERT",
        help="Serve HTTPS with this certificate chain (PEM); needs --tls-key.",
    ),
]
TlsKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--tls-key",
        envvar="SECUREKEY_TLS_KEY",
        help="The certificate's private key (PEM), readable by the server only.",
    ),
]
PrivateWebhooksOption = Annotated[
    bool,
    typer.Option(
        "--allow-private-webhooks",
        envvar="SECUREKEY_ALLOW_PRIVATE_WEBHOOKS",
        help="Let webhooks target loopback, link-local and private addresses "
        "(on-premise receivers). Refused by default.",
    ),
]
LogFormatOption = Annotated[
    str,
    typer.Option("--log-format", metavar="text|json", help="Log lines as text or as JSON objects."),
]
GraceOption = Annotated[
    float,
    typer.Option(
        "--graceful-timeout",
        min=0.1,
        max=3600,
        help="On SIGTERM, seconds for in-flight requests and the current rotation to finish.",
    ),
]
LoopOption = Annotated[
    str,
    typer.Option(
        "--loop",
        metavar="auto|uvloop|asyncio",
        help="Event loop; auto (the default) takes uvloop when installed.",
    ),
]
HttpOption = Annotated[
    str,
    typer.Option(
        "--http",
        metavar="auto|httptools|h11",
        help="HTTP parser; auto (the default) takes httptools when installed.",
    ),
]
WorkersOption = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        envvar="SECUREKEY_WORKERS",
        help="Worker processes sharing the port (PostgreSQL only; see README).",
    ),
]


def _check_log_options(log_format: str, log_level: str) -> None:
    """Usage errors (exit 2) for a log format or level the server does not know."""
    if log_format not in ("text", "json"):
        raise CliError(f"--log-format must be text or json, not {log_format!r}.", exit_code=2)
    if log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
        raise CliError(
            f"--log-level must be debug, info, warning or error, not {log_level!r}.", exit_code=2
        )


@server_app.callback(invoke_without_command=True)
def server(
    ctx: typer.Context,
    host: HostOption = "127.0.0.1",
    port: PortOption = 5000,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    scheduler_interval: IntervalOption = 1.0,
    log_level: LogLevelOption = "info",
    forwarded_allow_ips: ForwardedOption = "",
    max_streams_per_token: StreamsPerTokenOption = 20,
    max_streams: StreamsOption = 10_000,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    allow_private_webhooks: PrivateWebhooksOption = False,
    log_format: LogFormatOption = "text",
    graceful_timeout: GraceOption = 10.0,
    loop: LoopOption = "auto",
    http: HttpOption = "auto",
    workers: WorkersOption = 1,
) -> None:
    """Run the API server.

    SQLite in ./data by default; a first start prints an operator token, once.
    Lost every operator token? `securekey server operator-token create` mints one offline.
    On PostgreSQL, --workers N runs N processes on one port (one per core for read load).

    \b
    Example:
      $ securekey server --data-dir ./data --port 5000
      $ securekey server --host 0.0.0.0 --tls-cert server.pem --tls-key server.key
      $ securekey server --database-url postgresql://sk@db/sk --workers 2
      $ securekey server operator-token create --data-dir ./data
    """
    if ctx.invoked_subcommand is not None:
        return
    _check_log_options(log_format, log_level)
    try:
        _server_module().serve(
            host=host,
            port=port,
            data_dir=data_dir,
            database_url=database_url,
            scheduler_interval=scheduler_interval,
            log_level=log_level.lower(),
            log_format="json" if log_format == "json" else "text",
            forwarded_allow_ips=forwarded_allow_ips,
            max_streams_per_token=max_streams_per_token,
            max_streams=max_streams,
            tls_cert=tls_cert,
            tls_key=tls_key,
            allow_private_webhooks=allow_private_webhooks,
            graceful_timeout=graceful_timeout,
            loop=loop,
            http=http,
            workers=workers,
        )
    except SecureKeyError as error:  # settings that cannot work: one clear line, no traceback
        raise CliError(error.message) from None


@operator_token_app.command("create")
def operator_token_create(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    description: DescriptionOption = None,
    json: JsonOption = False,
) -> None:
    """Mint an operator token directly in the database (no server, no token needed).

    For when every operator token is lost or revoked. Needs the database and its master key
    (SECUREKEY_MASTER_KEY, or master.key in the data directory), like the server. The token
    is printed once, alone on stdout.

    \b
    Example:
      $ securekey server operator-token create --data-dir ./data -d "break glass"
      sko_Hq…
    """
    cli = use(ctx)
    try:
        token, raw = _server_module().mint_operator_token(
            data_dir=data_dir, database_url=database_url, description=description
        )
    except SecureKeyError as error:
        raise CliError(error.message) from None
    if json:
        cli.out.json({"id": token.id, "description": token.description, "token": raw})
        return
    show_new_token(cli.out, raw, token.id, None, lead=f"Operator token {token.id} created; this")


server_app.add_typer(operator_token_app)


def version(ctx: typer.Context, json: JsonOption = False) -> None:
    """Print the version.

    \b
    Example:
      $ securekey version
      securekey 0.1.0
    """
    out = use(ctx).out
    if json:
        out.json({"version": __version__})
    else:
        out.say(f"securekey {__version__}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.add_typer(server_app)
    app.command("version")(version)
