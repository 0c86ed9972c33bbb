"""Where a key ring looks for a newer pair: the server (conditional GETs) or an env file.

Both answer ``fetch()`` (blocking) and ``afetch()`` (from a coroutine), as ``Fetcher`` asks.
"""

from __future__ import annotations

import asyncio
import ssl

import httpx

from securekey.client._api import Endpoint
from securekey.client._envfile import read_env_file
from securekey.domain.keys import KeyPair, parse_pair
from securekey.exceptions import NotFoundError

__all__ = ["FileFetcher", "HttpFetcher"]


class HttpFetcher:
    """Conditional GETs of one app's config vars, keeping the release it last saw."""

    def __init__(
        self,
        endpoint: Endpoint,
        var: str,
        transport: httpx.BaseTransport | None,
        timeout: float,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._endpoint, self._var = endpoint, var
        self._client = httpx.Client(transport=transport, timeout=timeout, verify=verify)
        self._release: int | None = None

    def fetch(self) -> KeyPair | None:
        snapshot = self._endpoint.get(self._client, etag=self._release)
        if snapshot is None:
            return None
        pair = snapshot.pair(self._var)
        self._release = snapshot.release
        return pair

    async def afetch(self) -> KeyPair | None:
        return await asyncio.to_thread(self.fetch)

    def close(self) -> None:
        self._client.close()


class FileFetcher:
    """Reads the pair from an env file each time."""

    def __init__(self, path: str, var: str) -> None:
        self._path, self._var = path, var

    def read(self) -> KeyPair:
        values = read_env_file(self._path)
        if self._var not in values:
            raise NotFoundError("config_var", self._var)
        return parse_pair(values[self._var])

    def fetch(self) -> KeyPair | None:
        return self.read()

    async def afetch(self) -> KeyPair | None:
        return await asyncio.to_thread(self.read)
