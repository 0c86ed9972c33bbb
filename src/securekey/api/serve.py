"""``securekey server``: open the database, make sure an operator token exists, serve on uvicorn."""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys
from datetime import timedelta
from pathlib import Path
from types import FrameType

import uvicorn

from securekey.api.app import create_api
from securekey.api.live import ReleaseHub
from securekey.config import Settings
from securekey.exceptions import BusyError, ConfigurationError
from securekey.runtime import open_runtime
from securekey.scheduler import Scheduler
from securekey.services.tokens import TokenService

__all__ = ["DEFAULT_GRACE", "DEFAULT_HOST", "DEFAULT_PORT", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000


def _announce_token(token: str, host: str, port: int) -> None:
    url = f"http://{host}:{port}"
    print(
        "\n".join(
            [
                "",
                "A new operator token was created. It is shown this once; only its hash is stored.",
                "",
                f"    {token}",
                "",
                "Use it with the securekey CLI:",
                f"    securekey login --url {url} --token {token}",
                "or with the Heroku CLI:",
                f"    HEROKU_HOST={url} HEROKU_API_KEY={token} heroku apps",
                "",
            ]
        ),
        file=sys.stderr,
        flush=True,
    )


#: Seconds in-flight requests (and the scheduler's current rotation) get to finish on SIGTERM.
DEFAULT_GRACE = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server, stopping what never finishes on its own before draining requests.

    On SIGTERM or SIGINT: the scheduler is told to stop after its current rotation, open watch
    streams end with a retry hint so their clients reconnect to another replica, then uvicorn
    stops accepting, lets in-flight requests finish (up to the grace period) and runs the
    lifespan shutdown, which waits for the scheduler.
    """

    def __init__(
        self, config: uvicorn.Config, hub: ReleaseHub, scheduler: Scheduler | None
    ) -> None:
        super().__init__(config)
        self.hub = hub
        self.scheduler = scheduler
        self.terminated = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises a captured signal once it has stopped, so the process would die of
        # SIGTERM (status 143). A drained stop asked for by the platform is a success: exit 0.
        captured = getattr(self, "_captured_signals", None)
        if sig == signal.SIGTERM and isinstance(captured, list) and sig in captured:
            captured.remove(sig)
            self.terminated = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        logging.getLogger("securekey").info(
            "stopping: finishing in-flight requests (%d watch streams told to reconnect)",
            self.hub.watchers,
        )
        if self.scheduler is not None:
            self.scheduler.request_stop()
        self.hub.close()
        await super().shutdown(sockets)


def _ensure_operator_token(tokens: TokenService, value: str | None) -> str | None:
    """``ensure_operator_token``, tolerating a replica that stores the same token first."""
    try:
        return tokens.ensure_operator_token(value)
    except BusyError:
        # Replicas started together race to insert one token hash; the loser now finds it.
        return tokens.ensure_operator_token(value)


def _env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment (at most an hour)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 3600:
        raise ConfigurationError(f"{name} must be a number of seconds above 0, at most 3600.")
    return value


def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    data_dir: Path | None = None,
    database_url: str | None = None,
    scheduler_interval: float = 1.0,
    log_level: str = "info",
    graceful_timeout: float = DEFAULT_GRACE,
) -> None:
    """Run the server until interrupted (reads ``SECUREKEY_*`` from the environment)."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Tests and impatient operators shorten the first retry; it doubles per attempt from there.
    webhook_backoff = timedelta(seconds=_env_seconds("SECUREKEY_WEBHOOK_BACKOFF", 5.0))
    settings = Settings.from_env().with_overrides(data_dir=data_dir, database_url=database_url)
    runtime = open_runtime(settings)
    where = settings.data_dir.resolve() if settings.embedded else "the configured database"
    logging.getLogger("securekey").info("data in %s", where)
    fresh = _ensure_operator_token(
        TokenService(runtime.store), os.environ.get("SECUREKEY_OPERATOR_TOKEN") or None
    )
    if fresh is not None:
        _announce_token(fresh, host, port)
    app = create_api(
        runtime,
        scheduler_interval=scheduler_interval,
        webhook_backoff=webhook_backoff,
        graceful_timeout=graceful_timeout,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=max(1, math.ceil(graceful_timeout)),
    )
    server = _Server(config, app.state.ctx.hub, app.state.ctx.scheduler)
    try:
        server.run()
    finally:
        runtime.close()
    if server.terminated:
        # Everything is flushed and closed. Skip the interpreter's teardown (seconds of garbage
        # collection on a busy machine), as the SIGTERM uvicorn re-raises would have, but exit 0.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    if not server.started:  # e.g. the port was taken; uvicorn.run exits with 3 here too
        raise SystemExit(3)
