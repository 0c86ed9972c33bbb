"""The API's raw ASGI middlewares, one per module, each a plain class around ``(scope, receive,
send)``: the in-memory config read and the request limits with their latency metric; and the
server's own ``send``, which live streams write their events with, past every wrapper.
"""

from securekey.api.middleware.cached_config import CachedConfigRead
from securekey.api.middleware.limits import MAX_BODY, Limits, route_template, set_route_template
from securekey.api.middleware.server_send import keep_server_send, server_send

__all__ = [
    "MAX_BODY",
    "CachedConfigRead",
    "Limits",
    "keep_server_send",
    "route_template",
    "server_send",
    "set_route_template",
]
