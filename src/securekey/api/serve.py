"""``securekey server``: open the database, make sure an operator token exists, serve on uvicorn."""

from __future__ import annotations

import errno
import gc
import logging
import logging.config
import math
import os
import signal
import socket
import ssl
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from securekey.api.announce import announce_login, announce_token
from securekey.api.app import create_api
from securekey.api.live import ReleaseHub
from securekey.api.logs import LogFormat, logging_config
from securekey.api.workers import supervise
from securekey.config import Settings
from securekey.domain.models import Token
from securekey.exceptions import BusyError, ConfigurationError
from securekey.runtime import Runtime, open_runtime
from securekey.scheduler import Scheduler
from securekey.services.tokens import TokenService

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HTTP_IMPLEMENTATIONS",
    "LOOPS",
    "MAX_WORKERS",
    "bind_socket",
    "check_tls",
    "mint_operator_token",
    "serve",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000


_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

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


def mint_operator_token(
    *, data_dir: Path | None = None, database_url: str | None = None, description: str | None
) -> tuple[Token, str]:
    """A new operator token written straight into the database (no server needed), once."""
    settings = Settings.from_env().with_overrides(data_dir=data_dir, database_url=database_url)
    runtime = open_runtime(settings)
    try:
        tokens = TokenService(runtime.store, runtime.store.cipher)
        return tokens.create_operator_token(description, source="offline", actor="server")
    finally:
        runtime.close()


def check_tls(cert: Path | None, key: Path | None) -> None:
    """Refuse a half or unusable TLS set-up before anything starts, saying what to fix."""
    if cert is None and key is None:
        return
    if cert is None or key is None:
        raise ConfigurationError(
            "TLS needs both --tls-cert (the certificate chain, PEM) and --tls-key (its "
            "private key, PEM); give both, or neither to serve plain HTTP."
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"TLS file not found: {exc.filename}.") from None
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ConfigurationError(
            f"Cannot use --tls-cert {cert} with --tls-key {key} ({reason}): give a PEM "
            "certificate chain and the PEM private key that matches it."
        ) from None


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (as uvicorn binds); a taken port is a
    ``ConfigurationError`` instead of uvicorn's log line and exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every keep-alive answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"Port {port} on {host} is already in use: stop the process holding it or "
                "choose another with --port."
            ) from None
        raise ConfigurationError(
            f"Cannot listen on {host}:{port}: {exc.strerror}. Choose another --host or --port."
        ) from None
    sock.set_inheritable(True)
    return sock


#: ``--loop`` and ``--http`` choices; ``auto`` takes uvloop and httptools when installed (the
#: ``server`` extra installs them), asyncio and h11 otherwise.
LOOPS = ("auto", "uvloop", "asyncio")
HTTP_IMPLEMENTATIONS = ("auto", "httptools", "h11")
#: More worker processes than this is a typo, not a plan (each holds a database pool).
MAX_WORKERS = 64


@dataclass(frozen=True)
class _Options:
    """What ``serve`` was asked for, passed whole to each worker process."""

    host: str
    port: int
    settings: Settings
    scheduler_interval: float
    log_level: str
    log_config: dict[str, Any]
    forwarded_allow_ips: str
    max_streams_per_token: int
    max_streams: int
    tls_cert: Path | None
    tls_key: Path | None
    allow_private_webhooks: bool
    graceful_timeout: float
    loop: str
    http: str
    workers: int


def _check_options(
    log_level: str, scheduler_interval: float, loop: str, http: str, workers: int
) -> None:
    """Refuse options that cannot work, before anything is opened."""
    if log_level.lower() not in _LOG_LEVELS:
        raise ConfigurationError(
            f"--log-level {log_level!r} is not one of {', '.join(_LOG_LEVELS)}."
        )
    if not 0 < scheduler_interval <= 3600:
        raise ConfigurationError("--scheduler-interval must be above 0 and at most 3600 seconds.")
    if loop not in LOOPS:
        raise ConfigurationError(f"--loop {loop!r} is not one of {', '.join(LOOPS)}.")
    if http not in HTTP_IMPLEMENTATIONS:
        raise ConfigurationError(
            f"--http {http!r} is not one of {', '.join(HTTP_IMPLEMENTATIONS)}."
        )
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigurationError(f"--workers must be between 1 and {MAX_WORKERS}.")


def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    data_dir: Path | None = None,
    database_url: str | None = None,
    scheduler_interval: float = 1.0,
    log_level: str = "info",
    forwarded_allow_ips: str = "",
    max_streams_per_token: int = 20,
    max_streams: int = 10_000,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    allow_private_webhooks: bool = False,
    log_format: LogFormat = "text",
    graceful_timeout: float = DEFAULT_GRACE,
    loop: str = "auto",
    http: str = "auto",
    workers: int = 1,
) -> None:
    """Run the server until interrupted (reads ``SECUREKEY_*`` from the environment).

    With ``tls_cert`` and ``tls_key`` it serves HTTPS only. ``allow_private_webhooks`` lets
    webhooks target loopback, link-local and private addresses (on-premise receivers).
    ``workers`` > 1 runs that many processes on one listening socket (PostgreSQL only: each
    hears the others' releases through ``LISTEN``).
    """
    _check_options(log_level, scheduler_interval, loop, http, workers)
    check_tls(tls_cert, tls_key)
    log_config = logging_config(log_level, log_format)
    logging.config.dictConfig(log_config)
    # Everything this process creates (database, WAL, key files, backups) is for its user only.
    os.umask(0o077)
    settings = Settings.from_env().with_overrides(data_dir=data_dir, database_url=database_url)
    options = _Options(
        host, port, settings, scheduler_interval, log_level, log_config,
        forwarded_allow_ips.strip(), max_streams_per_token, max_streams, tls_cert, tls_key,
        allow_private_webhooks, graceful_timeout, loop, http, workers,
    )  # fmt: skip
    # Bound first: a taken port is reported before anything else is opened.
    sock = bind_socket(host, port)
    try:
        runtime = open_runtime(settings)
    except BaseException:
        sock.close()
        raise
    if workers == 1:
        _run_worker(options, sock, runtime)
    else:
        _run_workers(options, sock, runtime)


def _run_workers(options: _Options, sock: socket.socket, runtime: Runtime) -> None:
    """Greet once, close this process's runtime, and supervise ``options.workers`` forks."""
    try:
        _prepare_workers(options, runtime)
    except BaseException:
        sock.close()
        raise
    finally:
        runtime.close()
    try:
        stopped = supervise(options.workers, lambda: _run_worker(options, sock))
    finally:
        sock.close()
    if stopped:
        _exit_cleanly()


def _exit_cleanly() -> None:
    """Exit 0 after a drained stop, skipping the interpreter's teardown.

    Everything is flushed and closed; the teardown is seconds of garbage collection on a busy
    machine, which the SIGTERM uvicorn re-raises would have skipped too.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _greet(options: _Options, runtime: Runtime) -> None:
    """Log where the data is, make sure an operator token exists, print how to log in."""
    settings = options.settings
    where = settings.data_dir.resolve() if settings.embedded else "the configured database"
    logging.getLogger("securekey").info("data in %s", where)
    fresh = _ensure_operator_token(
        TokenService(runtime.store, runtime.store.cipher),
        os.environ.get("SECUREKEY_OPERATOR_TOKEN") or None,
    )
    scheme = "https" if options.tls_cert else "http"
    if fresh is not None:
        announce_token(fresh, options.host, options.port, scheme)
    else:
        announce_login(options.host, options.port, scheme)
    if options.allow_private_webhooks:
        logging.getLogger("securekey").warning(
            "webhooks may target loopback, link-local and private addresses "
            "(--allow-private-webhooks)"
        )


def _prepare_workers(options: _Options, runtime: Runtime) -> None:
    """Before forking: refuse SQLite, greet once (the workers each open their own runtime)."""
    if runtime.store.dialect != "postgresql":
        raise ConfigurationError(
            f"--workers {options.workers} needs PostgreSQL (--database-url): worker processes "
            "learn of each other's releases through LISTEN/NOTIFY, which SQLite lacks, so "
            "their watch streams would miss rotations. On SQLite run one process; the "
            "embedded database has a single writer anyway."
        )
    _greet(options, runtime)
    logging.getLogger("securekey").info("starting %d worker processes", options.workers)


def _app_and_server(options: _Options, runtime: Runtime) -> _Server:
    """The API over ``runtime`` and the uvicorn server that runs it."""
    app = create_api(
        runtime,
        scheduler_interval=options.scheduler_interval,
        # Tests and impatient operators shorten the first retry; it doubles per attempt.
        webhook_backoff=timedelta(seconds=_env_seconds("SECUREKEY_WEBHOOK_BACKOFF", 5.0)),
        max_streams_per_token=options.max_streams_per_token,
        max_streams=options.max_streams,
        webhook_timeout=_env_seconds("SECUREKEY_WEBHOOK_TIMEOUT", 15.0),
        allow_private_webhooks=options.allow_private_webhooks,
        graceful_timeout=options.graceful_timeout,
    )
    proxies = options.forwarded_allow_ips
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        loop=options.loop,  # checked against LOOPS
        http=options.http,  # checked against HTTP_IMPLEMENTATIONS
        log_level=options.log_level,
        log_config=options.log_config,
        access_log=False,
        timeout_graceful_shutdown=max(1, math.ceil(options.graceful_timeout)),
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: a client on
        # this host (or behind an unlisted proxy) could then pick the address the failed-auth
        # limit counts. Trust no proxy unless the operator names them.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or "",
        ssl_certfile=options.tls_cert,
        ssl_keyfile=options.tls_key,
    )
    return _Server(config, app.state.ctx.hub, app.state.ctx.scheduler)


def _run_worker(options: _Options, sock: socket.socket, runtime: Runtime | None = None) -> None:
    """Serve on ``sock`` in this process until stopped (a single server, or one worker)."""
    try:
        if runtime is None:  # a forked worker: its own pool, listener and scheduler
            runtime = open_runtime(options.settings)
        else:
            _greet(options, runtime)
        server = _app_and_server(options, runtime)
    except BaseException:
        if runtime is not None:
            runtime.close()
        sock.close()
        raise
    # Start-up objects (routes, schemas, SQLAlchemy metadata) never die: moved out of the
    # collector's sight, a full collection no longer walks them, which kept the read tail long
    # (and forked workers keep sharing their pages).
    gc.collect()
    gc.freeze()
    try:
        server.run(sockets=[sock])
    finally:
        runtime.close()
        sock.close()
    if server.terminated:
        _exit_cleanly()
    if not server.started:  # e.g. the port was taken; uvicorn.run exits with 3 here too
        raise SystemExit(3)
