"""App webhooks: an outbox of deliveries written in each release's transaction, sent with retries.

Sending happens outside any transaction: a worker leases a due delivery (moving its next
attempt a lease ahead, so another replica does not take it meanwhile), posts it signed with
``Heroku-Webhook-Hmac-SHA256``, then records the outcome and the next attempt with backoff.

Target policy: a webhook URL carries no credentials (``user:pass@``), and unless the server
allows private targets it may not name a loopback, link-local, private or otherwise non-public
address; the sender checks every resolved address again at delivery time (DNS rebinding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
from collections.abc import Collection
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from securekey.domain.clock import Clock, SystemClock
from securekey.domain.models import App, Delivery, Webhook, new_id
from securekey.exceptions import NotFoundError, ValidationError
from securekey.services.outbox import enqueue_release, release_deliveries
from securekey.services.ports import Store
from securekey.services.unit_of_work import UnitOfWork, find_app

__all__ = [
    "EVENT_KINDS",
    "WebhookService",
    "enqueue_release",
    "is_public_address",
    "literal_address",
    "release_deliveries",
    "sign_body",
]

#: Event kinds a webhook may include; releases are what securekey emits.
EVENT_KINDS = ("api:release",)
_LEVELS = ("notify", "sync")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: NAT64's well-known prefix: its addresses carry an IPv4 address in their last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: IPAddress) -> bool:
    """Whether a webhook may be delivered to ``address`` without ``--allow-private-webhooks``.

    Only globally routable unicast addresses are: loopback, link-local (169.254.169.254, the
    cloud metadata service), private (10/8, 172.16/12, 192.168/16, fc00::/7), shared, reserved,
    unspecified and multicast addresses are not, nor IPv6 forms that embed such an IPv4
    address (IPv4-mapped ``::ffff:127.0.0.1``, 6to4, Teredo, NAT64).
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(inner is not None and not is_public_address(inner) for inner in embedded):
            return False
        if address.ipv4_mapped is not None:
            return True  # the mapped IPv4 address decided
    return address.is_global and not address.is_multicast


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, as a resolver reads it, or None for a name.

    Besides dotted quads and IPv6 this reads the legacy forms ``inet_aton`` accepts
    (``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``127.1``), which resolvers honour.
    """
    text = host.rstrip(".")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if text and all(ch in "0123456789abcdefxABCDEFX." for ch in text) and text[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def _is_local_name(host: str) -> bool:
    """``localhost`` and names under it always mean this machine (RFC 6761)."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def sign_body(secret: str, body: bytes) -> str:
    """Heroku's signature: base64 of HMAC-SHA256 of the raw body under the webhook secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class WebhookService:
    """Manage webhooks, and lease/settle their deliveries for a sender."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        *,
        backoff: timedelta = timedelta(seconds=5),
        max_backoff: timedelta = timedelta(hours=1),
        max_attempts: int = 10,
        lease: timedelta = timedelta(seconds=60),
        allow_private: bool = False,
    ) -> None:
        self.store = store
        #: Whether webhooks may target loopback, link-local and private addresses.
        self.allow_private = allow_private
        self.clock: Clock = clock or SystemClock()
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.lease = lease

    def create(
        self,
        app_ref: str,
        url: object,
        include: object,
        *,
        level: object = "notify",
        secret: object = None,
        authorization: object = None,
        actor: str = "operator",
    ) -> tuple[Webhook, str]:
        """Add a webhook; returns it and its secret (generated when not given).

        ``authorization``, as in Heroku, is sent verbatim as each delivery's Authorization
        header (e.g. ``Bearer …`` for a receiver behind its own auth); it is stored encrypted.
        """
        the_url = _check_url(url, allow_private=self.allow_private)
        kinds = _check_include(include)
        if level not in _LEVELS:
            raise ValidationError("level", "level must be notify or sync.")
        if secret is None:
            the_secret = secrets.token_hex(32)
        elif isinstance(secret, str) and 0 < len(secret) <= 256 and "\x00" not in secret:
            the_secret = secret
        else:
            raise ValidationError("secret", "secret must be a string of 1 to 256 characters.")
        the_authorization = _check_authorization(authorization)
        with UnitOfWork(self.store, self.clock, actor=actor) as uow:
            app = uow.app(app_ref)
            hook = Webhook(
                new_id(),
                app.id,
                the_url,
                kinds,
                str(level),
                the_secret,
                uow.now,
                uow.now,
                the_authorization,
            )
            uow.tx.add_webhook(hook)
            uow.audit("webhook.create", app, {"webhook": hook.id, "url": the_url[:200]})
        return hook, the_secret

    def list_hooks(self, app_ref: str) -> tuple[App, list[Webhook]]:
        """An app and its webhooks."""
        with self.store.transaction(write=False) as tx:
            app = find_app(tx, app_ref)
            return app, tx.list_webhooks(app.id)

    def get(self, app_ref: str, webhook_id: str) -> tuple[App, Webhook]:
        """One webhook of an app."""
        with self.store.transaction(write=False) as tx:
            app = find_app(tx, app_ref)
            hook = tx.get_webhook(app.id, webhook_id)
            if hook is None:
                raise NotFoundError("app_webhook", webhook_id)
            return app, hook

    def delete(
        self, app_ref: str, webhook_id: str, *, actor: str = "operator"
    ) -> tuple[App, Webhook]:
        """Remove a webhook and its pending deliveries."""
        with UnitOfWork(self.store, self.clock, actor=actor) as uow:
            app = uow.app(app_ref)
            hook = uow.tx.get_webhook(app.id, webhook_id)
            if hook is None:
                raise NotFoundError("app_webhook", webhook_id)
            uow.tx.delete_webhook(hook.id)
            uow.audit("webhook.delete", app, {"webhook": hook.id})
            return app, hook

    def deliveries(self, app_ref: str) -> tuple[dict[str, Webhook], list[Delivery]]:
        """An app's deliveries, with its webhooks by id."""
        with self.store.transaction(write=False) as tx:
            app = find_app(tx, app_ref)
            hooks = {h.id: h for h in tx.list_webhooks(app.id)}
            return hooks, tx.list_deliveries(app.id)

    def delivery(self, app_ref: str, delivery_id: str) -> tuple[Webhook | None, Delivery]:
        """One delivery of an app."""
        with self.store.transaction(write=False) as tx:
            app = find_app(tx, app_ref)
            found = tx.get_delivery(app.id, delivery_id)
            if found is None:
                raise NotFoundError("app_webhook_delivery", delivery_id)
            return tx.get_webhook(app.id, found.webhook_id), found

    def lease_next(
        self, exclude: Collection[str] = (), *, busy_hooks: Collection[str] = ()
    ) -> tuple[Delivery, Webhook, bytes] | None:
        """Take the next due delivery for sending: its webhook and the exact body to post.

        Deliveries in ``exclude`` and those of the webhooks in ``busy_hooks`` (being sent to
        now) are passed over, so one slow receiver holds at most one sender, in order.
        """
        now = self.clock.now()
        with self.store.transaction() as tx:
            found = tx.claim_due_delivery(now, exclude, busy_hooks)
            if found is None:
                return None
            hook = tx.get_webhook(found.app_id, found.webhook_id)
            attempt = found.num_attempts + 1
            leased = replace(
                found, num_attempts=attempt, next_attempt_at=now + self.lease, updated_at=now
            )
            tx.update_delivery(leased)
        if hook is None:  # pragma: no cover - deliveries are deleted with their webhook
            return None
        body: dict[str, Any] = json.loads(found.payload)
        body["webhook_metadata"] = {
            "attempt": {"id": str(new_id())},
            "delivery": {"id": found.id},
            "event": {"id": found.event_id, "include": found.include},
            "webhook": {"id": hook.id},
        }
        return leased, hook, json.dumps(body, sort_keys=True).encode()

    def settle(self, delivery: Delivery, code: int | None, error: str | None) -> Delivery:
        """Record an attempt's outcome: done on 2xx, else retried with backoff until it gives up."""
        now = self.clock.now()
        ok = code is not None and 200 <= code < 300
        if ok:
            status, next_at = "succeeded", None
        elif delivery.num_attempts >= self.max_attempts:
            status, next_at = "failed", None
        else:
            delay = min(self.backoff * (2 ** (delivery.num_attempts - 1)), self.max_backoff)
            status, next_at = "retrying", now + delay
        settled = replace(
            delivery,
            status=status,
            next_attempt_at=next_at,
            last_code=code,
            last_error=(error or None) and str(error)[:200],
            updated_at=now,
        )
        with self.store.transaction() as tx:
            tx.update_delivery(settled)
        return settled


def _check_url(url: object, *, allow_private: bool) -> str:
    if not isinstance(url, str) or len(url) > 2000 or "\x00" in url:
        raise ValidationError("url", "url must be an http(s) URL of at most 2000 characters.")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValidationError(
            "url", "url must be an http(s) URL with a valid host and port."
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValidationError("url", "url must be an http(s) URL with a host.")
    if "@" in parts.netloc:
        # Credentials in a URL would be stored, listed and audited in plain text, and would
        # silently replace the configured ``authorization``: they belong there instead.
        raise ValidationError(
            "url",
            "url must not contain credentials (user:password@); give them in "
            "authorization instead, which is stored encrypted and never shown.",
        )
    if not allow_private:
        address = literal_address(host)
        if _is_local_name(host) or (address is not None and not is_public_address(address)):
            raise ValidationError(
                "url",
                f"url must not target a loopback, link-local or private address ({host}); "
                "start the server with --allow-private-webhooks for on-premise receivers.",
            )
    return url


def _check_include(include: object) -> tuple[str, ...]:
    if not isinstance(include, list) or not include:
        raise ValidationError(
            "include", 'include must be a non-empty list such as ["api:release"].'
        )
    kinds = []
    for item in include:
        if item not in EVENT_KINDS:
            raise ValidationError("include", f"include may only list: {', '.join(EVENT_KINDS)}.")
        kinds.append(str(item))
    return tuple(dict.fromkeys(kinds))


def _check_authorization(value: object) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= 2000
        or any(ch in value for ch in "\x00\r\n")
        or not value.isprintable()
    ):
        raise ValidationError(
            "authorization",
            "authorization must be one line of 1 to 2000 printable characters.",
        )
    return value
