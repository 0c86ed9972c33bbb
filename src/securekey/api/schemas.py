"""Request bodies and documented response shapes for the OpenAPI description.

Requests are validated here (types only); names and values are checked by the domain.
Responses are built by ``securekey.services.resources``; these models document them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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
    "DeliveryOut",
    "ErrorOut",
    "KeyVersionOut",
    "RateLimitOut",
    "Ref",
    "ReleaseOut",
    "ResolveAddon",
    "RotateIn",
    "RotationOut",
    "TokenCreate",
    "TokenCreatedOut",
    "TokenOut",
    "WebhookCreate",
    "WebhookOut",
]

Name = Field(default=None, max_length=200)
ShortStr = Annotated[str, StringConstraints(max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Ref(_In):
    """A reference to a resource by id or name."""

    id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)

    def value(self) -> str | None:
        """The id if given, else the name."""
        return self.id or self.name


class AppCreate(_In):
    """``POST /apps``: a name is generated when none is given."""

    name: str | None = Name
    region: str | None = Name
    stack: str | None = Name


class AppUpdate(_In):
    """``PATCH /apps/{app}``: rename."""

    name: str | None = Name
    maintenance: bool | None = None


class AppDelete(_In):
    """``DELETE /apps/{app}``: ``force`` also destroys add-ons attached elsewhere."""

    force: bool = False


class PlanRef(_In):
    """A plan by name (``securekey:fortnightly``) or id."""

    name: str | None = Name
    id: str | None = Name


class AttachmentOpts(_In):
    """The first attachment's options."""

    name: str | None = Name


class AddonCreate(_In):
    """``POST /apps/{app}/addons``."""

    plan: ShortStr | PlanRef
    name: str | None = Name
    attachment: AttachmentOpts | None = None
    config: dict[str, str | int | float | bool | None] | None = None
    confirm: str | None = Name


class AddonDelete(_In):
    """``DELETE /apps/{app}/addons/{addon}``: ``force`` detaches from other apps too."""

    force: bool = False


class AttachmentCreate(_In):
    """``POST /addon-attachments``."""

    addon: ShortStr | Ref
    app: ShortStr | Ref
    name: str | None = Name
    confirm: str | None = Name
    namespace: str | None = Name


class ResolveAddon(_In):
    """``POST /actions/addons/resolve``."""

    addon: str = Field(max_length=200)
    app: str | None = Name
    addon_service: str | None = Name


class RotateIn(_In):
    """``POST /addons/{addon}/actions/rotate``: ``emergency`` replaces both keys."""

    emergency: bool = False


class TokenCreate(_In):
    """``POST /apps/{app}/tokens``."""

    description: str | None = Name


class WebhookCreate(_In):
    """``POST /apps/{app}/webhooks`` in Heroku's shape."""

    url: str = Field(max_length=2000)
    include: list[str] = Field(max_length=10)
    level: str = Field(default="notify", max_length=16)
    secret: str | None = Field(default=None, max_length=256)
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


class TokenOut(_Out):
    """A token's metadata."""

    id: str
    kind: str
    description: str
    created_at: str


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
