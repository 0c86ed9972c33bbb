"""The CLI's HTTP client of the securekey API: every failure becomes one ``CliError`` here.

Connection problems, timeouts and error answers are translated at this boundary only, into a
line that says what went wrong and what to do; commands never see an ``httpx`` exception.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx

from securekey import __version__
from securekey.cli.context import seg
from securekey.cli.errors import CliError, ResponseError
from securekey.cli.session import Credentials
from securekey.client._tls import untrusted_certificate as _untrusted

__all__ = ["ApiClient", "Reply"]

_ACCEPT = "application/vnd.heroku+json; version=3"

#: What to run to find the right name when the server says "not found".
_LIST_HINTS = {
    "app": "List apps with `securekey apps`.",
    "add_on": "List add-ons with `securekey addons`.",
    "add_on_attachment": "List an app's attachments with `securekey addons -a APP`.",
    "release": "List releases with `securekey releases -a APP`.",
    "token": "List tokens with `securekey tokens -a APP`.",
    "app_webhook": "List webhooks with `securekey webhooks -a APP`.",
}


@dataclass
class Reply:
    """A successful answer: its JSON body and headers."""

    data: Any
    headers: httpx.Headers = field(default_factory=httpx.Headers)


class ApiClient:
    """Operator calls to one securekey server."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.credentials = credentials
        self.url = credentials.url
        self.timeout = timeout
        headers = {"Accept": _ACCEPT, "User-Agent": f"securekey-cli/{__version__}"}
        if credentials.token:
            headers["Authorization"] = f"Bearer {credentials.token}"
        verify: ssl.SSLContext | bool = True
        if self.url.lower().startswith("http://"):
            # Plain HTTP never uses TLS, so skip loading the CA bundle (a tenth of a second on
            # every command). This context still verifies, and so refuses, any TLS attempt.
            verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        elif credentials.ca_bundle:
            # A private CA: trust exactly the CAs in that file (as REQUESTS_CA_BUNDLE does).
            try:
                verify = ssl.create_default_context(cafile=credentials.ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise CliError(
                    f"SECUREKEY_CA_BUNDLE={credentials.ca_bundle!r} is not a readable PEM file "
                    f"of CA certificates ({type(exc).__name__}); point it at your CA's "
                    "certificate, or unset it to trust the public CAs."
                ) from None
        try:
            self._http = httpx.Client(
                base_url=self.url,
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                transport=transport,
                follow_redirects=False,
                verify=verify,
            )
        except (httpx.InvalidURL, ValueError):
            raise self._bad_url() from None

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    # ------------------------------------------------------------------ verbs

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> Any:
        """GET ``path``; its JSON."""
        return self.request("GET", path, headers=headers).data

    def post(self, path: str, body: Any = None) -> Any:
        """POST ``path`` with a JSON body; the answer's JSON."""
        return self.request("POST", path, json=body if body is not None else {}).data

    def patch(self, path: str, body: Any) -> Any:
        """PATCH ``path`` with a JSON body; the answer's JSON."""
        return self.request("PATCH", path, json=body).data

    def delete(self, path: str, body: Any = None) -> Any:
        """DELETE ``path`` (with a JSON body when given); the answer's JSON."""
        return self.request("DELETE", path, json=body).data

    def latest_release(self, app: str) -> int:
        """The app's newest release version, asked the way the Heroku CLI asks."""
        rows = self.get(
            f"/apps/{seg(app)}/releases", headers={"Range": "version ..; max=1, order=desc"}
        )
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            raise CliError(f"The server at {self.url} returned no releases for {app}.")
        return int(rows[0].get("version", 0))

    # --------------------------------------------------------------- plumbing

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request; a ``Reply`` on 2xx, else a ``CliError`` saying what to do."""
        if not self.credentials.token:
            raise CliError(
                "Not logged in: run `securekey login --url URL --token TOKEN` with the operator "
                "token `securekey server` printed, or set SECUREKEY_URL and SECUREKEY_TOKEN."
            )
        try:
            response = self._http.request(method, path, json=json, headers=headers)
        except httpx.TimeoutException:
            raise CliError(
                f"The securekey server at {self.url} did not answer within {self.timeout:g} s. "
                f"Check it is healthy ({self.url}/readyz), or allow longer with SECUREKEY_TIMEOUT."
            ) from None
        except httpx.ConnectError as exc:
            untrusted = _untrusted(exc)
            if untrusted is not None:
                raise CliError(
                    f"The securekey server at {self.url} presented a certificate this machine "
                    f"does not trust ({untrusted.verify_message}). If a private CA signed it, "
                    "set SECUREKEY_CA_BUNDLE to that CA's certificate (PEM)."
                ) from None
            raise CliError(
                f"Cannot reach the securekey server at {self.url} ({_reason(exc)}). "
                "Start it with `securekey server`, or point SECUREKEY_URL or "
                "`securekey login --url` at the right address."
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise self._bad_url() from None
        except httpx.HTTPError as exc:
            raise CliError(
                f"Talking to the securekey server at {self.url} failed ({_reason(exc)}). "
                "Check the server and the network, then try again."
            ) from None
        if response.is_success:
            return Reply(self._json(response), response.headers)
        raise self._error(response)

    def _json(self, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._not_securekey(response) from None

    def _bad_url(self) -> CliError:
        return CliError(
            f"{self.url!r} (from {self.credentials.url_source}) is not a server URL; give one "
            "like http://127.0.0.1:5000 with SECUREKEY_URL or `securekey login --url`."
        )

    def _not_securekey(self, response: httpx.Response) -> CliError:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return CliError(
            f"The server at {self.url} did not answer like a securekey server "
            f"(HTTP {response.status_code}, {kind}). Check SECUREKEY_URL or `securekey login`."
        )

    def _error(self, response: httpx.Response) -> CliError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("message"), str):
            return self._not_securekey(response)
        id_ = str(body.get("id", "error"))
        message = " ".join(str(body["message"]).split())
        creds = self.credentials
        if status == 401 and (creds.token or "").startswith("ska_"):
            text = (
                f"The server at {self.url} does not know the app token from "
                f"{creds.token_source}: it is unknown or was revoked. Mint a new one with "
                "`securekey tokens:create -a APP` (run with the operator token) and use that."
            )
        elif status == 401:
            text = (
                f"The server at {self.url} rejected the token from {creds.token_source} "
                f"({message.rstrip('.')}). Run `securekey login` with the operator token "
                "`securekey server` printed, or fix SECUREKEY_TOKEN."
            )
        elif status == 403:
            fix = (
                "unset it, or set it to the operator token"
                if creds.token_source == "SECUREKEY_TOKEN"  # noqa: S105 - a variable's name
                else "run `securekey login` with the operator token"
            )
            text = f"{message} This token comes from {creds.token_source}: {fix}."
        elif status == 404 and id_ == "not_found":
            hint = _LIST_HINTS.get(str(body.get("resource", "")))
            if hint is None and "endpoint" in message:
                hint = f"Is {self.url} a securekey server of this version ({__version__})?"
            text = f"{message} {hint}" if hint else message
        elif status == 409:
            text = f"{message} Another change got there first; run the command again."
        elif status == 429:
            wait = response.headers.get("retry-after", "a minute")
            text = f"{message} Wait {wait} s before trying again."
        elif status >= 500:
            text = f"The server at {self.url} failed ({status} {id_}): {message} See its log."
        else:
            text = message
        return ResponseError(text, status=status, id_=id_, body=body)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    if "refused" in text.lower():
        return "connection refused"
    return text or type(exc).__name__
