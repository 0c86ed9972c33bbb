"""``server`` and ``version``: run the API server, print the version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from securekey import __version__
from securekey.cli.context import use
from securekey.cli.errors import CliError
from securekey.exceptions import ConfigurationError

__all__ = ["register"]


def server(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 5000,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Directory of the embedded SQLite database (./data)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="PostgreSQL URL instead of the embedded database."),
    ] = None,
    scheduler_interval: Annotated[
        float, typer.Option("--scheduler-interval", help="Seconds between due-rotation checks.")
    ] = 1.0,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            envvar="SECUREKEY_TLS_CERT",
            help="Serve HTTPS with this certificate chain (PEM); needs --tls-key.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key",
            envvar="SECUREKEY_TLS_KEY",
            help="The certificate's private key (PEM), readable by the server only.",
        ),
    ] = None,
    allow_private_webhooks: Annotated[
        bool,
        typer.Option(
            "--allow-private-webhooks",
            envvar="SECUREKEY_ALLOW_PRIVATE_WEBHOOKS",
            help="Let webhooks target loopback, link-local and private addresses "
            "(on-premise receivers). Refused by default.",
        ),
    ] = False,
) -> None:
    """Run the API server.

    SQLite in ./data by default; a first start prints an operator token, once.

    \b
    Example:
      $ securekey server --data-dir ./data --port 5000
      $ securekey server --host 0.0.0.0 --tls-cert server.pem --tls-key server.key
    """
    # Imported here: the server's dependencies are not needed (nor installed) for the client.
    try:
        from securekey.api.serve import serve
    except ModuleNotFoundError as exc:
        raise CliError(
            f"The server needs {exc.name}, which is not installed: pip install 'securekey[server]'."
        ) from None

    try:
        serve(
            host=host,
            port=port,
            data_dir=data_dir,
            database_url=database_url,
            scheduler_interval=scheduler_interval,
            log_level=log_level,
            tls_cert=tls_cert,
            tls_key=tls_key,
            allow_private_webhooks=allow_private_webhooks,
        )
    except ConfigurationError as exc:
        raise CliError(exc.message) from None


def version(ctx: typer.Context) -> None:
    """Print the version.

    \b
    Example:
      $ securekey version
      securekey 0.1.0
    """
    use(ctx).out.say(f"securekey {__version__}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("server")(server)
    app.command("version")(version)
