"""Request bodies and documented response shapes for the OpenAPI description.

Requests are validated here (types, and text any database can store: no NUL bytes, no lone
surrogates, bounded length); names and values are checked by the domain. Responses are built
by ``securekey.services.resources``; these models document them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints

__all__ = [
    "AccountOut",
    "AddonCreate",
    "AddonDelete",
    "AddonOut",
    "AppCreate",
    "AppDelete",
    "AppOut",
    "AppUpdate",
    "AttachmentCreate",
    "AttachmentOut",
    "BulkRotationOut",
    "ConfigVarsPatch",
    "DeliveryOut",
    "ErrorOut",
    "KeyVersionOut",
    "RateLimitOut",
    "Ref",
    "ReleaseOut",
    "ResolveAddon",
    "RotateIn",
    "RotateManyIn",
    "RotationOut",
    "TokenCreate",
    "TokenCreatedOut",
    "TokenOut",
    "WebhookCreate",
    "WebhookOut",
]


def _storable(value: str) -> str:
    # PostgreSQL refuses NUL in text, and a lone surrogate cannot be encoded at all: both are
    # the caller's mistake (422), never the database's (500).
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


#: A name or reference: storable text of at most 200 characters.
ShortStr = Annotated[str, StringConstraints(max_length=200), AfterValidator(_storable)]
#: A config var value as Heroku accepts it: a string, or a finite number written as one.
ConfigValue = (
    Annotated[str, Strict(), AfterValidator(_storable)]
    | Annotated[int, Strict()]
    | Annotated[float, Strict(), Field(allow_inf_nan=False)]
)
#: ``PATCH /apps/{app}/config-vars``: names to values, ``null`` unsets.
ConfigVarsPatch = dict[str, ConfigValue | None]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Ref(_In):
    """A reference to a resource by id or name."""

    id: ShortStr | None = None
    name: ShortStr | None = None

    def value(self) -> str | None:
        """The id if given, else the name."""
        return self.id or self.name


class AppCreate(_In):
    """``POST /apps``: a name is generated when none is given."""

    name: ShortStr | None = None
    region: ShortStr | None = None
    stack: ShortStr | None = None


class AppUpdate(_In):
    """``PATCH /apps/{app}``: rename."""

    name: ShortStr | None = None
    maintenance: bool | None = None


class AppDelete(_In):
    """``DELETE /apps/{app}``: ``force`` also destroys add-ons attached elsewhere."""

    force: bool = False


class PlanRef(_In):
    """A plan by name (``securekey:fortnightly``) or id."""

    name: ShortStr | None = None
    id: ShortStr | None = None


class AttachmentOpts(_In):
    """The first attachment's options."""

    name: ShortStr | None = None


class AddonCreate(_In):
    """``POST /apps/{app}/addons``."""

    plan: ShortStr | PlanRef
    name: ShortStr | None = None
    attachment: AttachmentOpts | None = None
    config: dict[str, str | int | float | bool | None] | None = None
    confirm: ShortStr | None = None


class AddonDelete(_In):
    """``DELETE /apps/{app}/addons/{addon}``: ``force`` detaches from other apps too."""

    force: bool = False


class AttachmentCreate(_In):
    """``POST /addon-attachments``."""

    addon: ShortStr | Ref
    app: ShortStr | Ref
    name: ShortStr | None = None
    confirm: ShortStr | None = None
    namespace: ShortStr | None = None


class ResolveAddon(_In):
    """``POST /actions/addons/resolve``."""

    addon: ShortStr
    app: ShortStr | None = None
    addon_service: ShortStr | None = None


class RotateIn(_In):
    """``POST /addons/{addon}/actions/rotate``: ``emergency`` replaces both keys."""

    emergency: bool = False


class RotateManyIn(_In):
    """``POST /actions/addons/rotate``: rotate now every add-on matching ONE filter.

    ``all``, a ``plan`` (``securekey:daily``), or an ``app`` (add-ons billed to or attached to
    it). ``limit`` stops after that many add-ons with ``next_after`` to continue from (give it
    back as ``after``); ``dry_run`` only counts what matches.
    """

    all_: Annotated[bool, Strict()] = Field(default=False, alias="all")
    plan: ShortStr | None = None
    app: ShortStr | None = None
    emergency: Annotated[bool, Strict()] = False
    limit: Annotated[int, Strict()] | None = None
    after: ShortStr | None = None
    batch_size: Annotated[int, Strict()] | None = None
    dry_run: Annotated[bool, Strict()] = False


class TokenCreate(_In):
    """``POST /apps/{app}/tokens``."""

    description: ShortStr | None = None


class WebhookCreate(_In):
    """``POST /apps/{app}/webhooks`` in Heroku's shape."""

    url: Annotated[str, StringConstraints(max_length=2000), AfterValidator(_storable)]
    include: list[ShortStr] = Field(max_length=10)
    level: ShortStr = "notify"
    secret: Annotated[str, StringConstraints(max_length=256), AfterValidator(_storable)] | None = (
        None
    )
    authorization: str | None = Field(default=None, max_length=2000)


class ErrorOut(_Out):
    """Every error: a stable ``id`` and a message safe to show."""

    id: str
    message: str
    resource: str | None = None
    field: str | None = None


class NamedRef(_Out):
    id: str
    name: str


class AppOut(_Out):
    """An app."""

    id: str
    name: str
    web_url: str
    created_at: str
    updated_at: str


class PlanOut(_Out):
    id: str
    name: str


class AddonOut(_Out):
    """An add-on."""

    id: str
    name: str
    app: NamedRef
    addon_service: dict[str, Any]
    plan: PlanOut
    billed_price: dict[str, Any]
    state: str
    config_vars: list[str]
    created_at: str
    updated_at: str


class AttachmentAddon(_Out):
    id: str
    name: str
    app: NamedRef


class AttachmentOut(_Out):
    """An add-on attachment."""

    id: str
    name: str
    addon: AttachmentAddon
    app: NamedRef
    created_at: str
    updated_at: str


class ReleaseOut(_Out):
    """A release."""

    id: str
    version: int
    description: str
    status: str
    current: bool
    user: dict[str, Any]
    created_at: str


class AccountOut(_Out):
    """The operator's account."""

    id: str
    email: str


class RateLimitOut(_Out):
    """Requests left in the current window."""

    remaining: int


class KeyVersionOut(_Out):
    """One key in an add-on's history."""

    version: int
    fingerprint: str
    state: str
    created_at: str
    retired_at: str | None


class RotationOut(_Out):
    """The add-on after a rotation and the release made on each attached app."""

    addon: AddonOut
    fingerprints: dict[str, str]
    releases: list[dict[str, Any]]


class BulkRotationOut(_Out):
    """Counts of a rotation by filter; ``failed`` add-ons were rolled back and are unchanged."""

    matched: int
    rotated: int
    releases: int
    failed: list[dict[str, Any]]
    emergency: bool
    dry_run: bool
    next_after: str | None


class TokenOut(_Out):
    """A token's metadata: ``source`` is api, env, generated or offline; ``last_used_at`` is
    coarse (moves at most once a minute); ``current`` marks the caller's own operator token."""

    id: str
    kind: str
    description: str
    source: str
    created_at: str
    last_used_at: str | None = None
    current: bool | None = None


class TokenCreatedOut(TokenOut):
    """A new token: ``token`` is shown this once."""

    token: str


class WebhookOut(_Out):
    """An app webhook."""

    id: str
    app: NamedRef
    include: list[str]
    level: str
    url: str


class DeliveryOut(_Out):
    """A webhook delivery."""

    id: str
    status: str
    num_attempts: int


class AuditEventOut(_Out):
    """One audit event: who did what to which target; details name fingerprints, never keys."""

    id: str
    seq: int
    created_at: str
    actor: str
    action: str
    target: dict[str, str]
    details: dict[str, str]


class StatusOut(_Out):
    """What ``securekey doctor`` shows: version, database, scheduler, failing webhooks."""

    version: str
    time: str
    tls: bool
    token: dict[str, str]
    database: dict[str, Any]
    ready: bool
    scheduler: dict[str, Any]
    addons: int
    next_rotation: dict[str, Any] | None
    webhooks: dict[str, Any]
