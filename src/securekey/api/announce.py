"""What ``securekey server`` prints on stdout at start: the login line, or a new operator token.

Never in the log stream (stderr), so a token cannot reach collected logs.
"""

from __future__ import annotations

import sys

__all__ = ["announce_login", "announce_token"]


def _url(host: str, port: int, scheme: str = "http") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def announce_token(token: str, host: str, port: int, scheme: str = "http") -> None:
    """A first start: the new operator token, once, and how to use it."""
    # On stdout, not in the log stream (stderr): a token must not reach collected logs.
    url = _url(host, port, scheme)
    print(
        "\n".join(
            [
                "",
                "A new operator token was created. It is shown this once; only a keyed digest "
                "is stored.",
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
        file=sys.stdout,
        flush=True,
    )


def announce_login(host: str, port: int, scheme: str = "http") -> None:
    """Every start: the exact login line (the token is the one shown at the first start)."""
    url = _url(host, port, scheme)
    print(
        f"Serving on {url}. Log in with:\n"
        f"    securekey login --url {url} --token <the operator token shown at first start>",
        file=sys.stdout,
        flush=True,
    )
