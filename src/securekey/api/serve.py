"""``securekey server``: open the database, make sure an operator token exists, serve on uvicorn."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import uvicorn

from securekey.api.app import create_api
from securekey.config import Settings
from securekey.runtime import open_runtime
from securekey.services.tokens import TokenService

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "serve"]

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


def serve(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    data_dir: Path | None = None,
    database_url: str | None = None,
    scheduler_interval: float = 1.0,
    log_level: str = "info",
) -> None:
    """Run the server until interrupted (reads ``SECUREKEY_*`` from the environment)."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings.from_env().with_overrides(data_dir=data_dir, database_url=database_url)
    runtime = open_runtime(settings)
    where = settings.data_dir.resolve() if settings.embedded else "the configured database"
    logging.getLogger("securekey").info("data in %s", where)
    fresh = TokenService(runtime.store).ensure_operator_token(
        os.environ.get("SECUREKEY_OPERATOR_TOKEN") or None
    )
    if fresh is not None:
        _announce_token(fresh, host, port)
    app = create_api(runtime, scheduler_interval=scheduler_interval)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        runtime.close()
