"""The API's raw ASGI middlewares, one per module, each a plain class around ``(scope, receive,
send)``: the in-memory config read and the request limits with their latency metric.
"""

from securekey.api.middleware.cached_config import CachedConfigRead
from securekey.api.middleware.limits import MAX_BODY, Limits, route_template, set_route_template

__all__ = ["MAX_BODY", "CachedConfigRead", "Limits", "route_template", "set_route_template"]
