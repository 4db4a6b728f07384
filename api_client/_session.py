"""The transport: one pooled `httpx.Client` per process, and the headers every request carries.

The client is created on the first request, and again in a process forked after that, so a worker
can fork first; it never reads the environment (`trust_env=False`). An httpx exception raised while
sending becomes ours through `_http.error_for_httpx`.
"""

from __future__ import annotations

import os
import threading
from typing import Final

import httpx

from api_client._http import Call, error_for_httpx
from api_client.config import ClientConfig

__all__ = ["API_KEY_HEADER", "HttpSession"]

API_KEY_HEADER: Final = "X-Clinia-API-Key"
_URL_CACHE_SIZE: Final = 1024


class HttpSession:
    """Owns the pooled `httpx.Client`: created on first use in each process, closed once."""

    def __init__(self, config: ClientConfig, transport: httpx.BaseTransport | None) -> None:
        self._config = config
        self._transport = transport
        self._client: httpx.Client | None = None
        self._pid: int | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._urls: dict[str, httpx.URL] = {}

    def _build(self) -> httpx.Client:
        config = self._config
        return httpx.Client(
            base_url=config.base_url,
            timeout=httpx.Timeout(
                connect=config.connect_timeout_s,
                read=config.read_timeout_s,
                write=config.write_timeout_s,
                pool=config.pool_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_keepalive_connections,
                keepalive_expiry=config.keepalive_expiry_s,
            ),
            transport=self._transport,
            follow_redirects=False,
            trust_env=False,
        )

    def _current(self) -> httpx.Client:
        pid = os.getpid()
        with self._lock:
            if self._closed:
                raise RuntimeError("this RegistryClient is closed")
            if self._client is None or self._pid != pid:
                # A client inherited through fork shares sockets with the parent: leave it alone.
                self._client = self._build()
                self._pid = pid
            return self._client

    @property
    def started(self) -> bool:
        """Whether this process has created its `httpx.Client` yet."""
        return self._client is not None and self._pid == os.getpid()

    def send(self, call: Call) -> httpx.Response:
        """Sends `call` once and returns the answer, read in full.

        Raises:
            TransportError: no answer (`RequestTimeoutError` for a timeout).
            ContractError: an answer that could not be decoded.
        """
        client = self._current()
        headers = {
            API_KEY_HEADER: self._config.api_key.get_secret_value(),
            "User-Agent": self._config.user_agent,
            "Accept": "application/json",
        }
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        try:
            request = client.build_request(
                call.method, self._url(client, call.path), params=call.params,
                content=call.body, headers=headers,
            )  # fmt: skip
            return client.send(request)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise error_for_httpx(exc, call) from exc

    def _url(self, client: httpx.Client, path: str) -> httpx.URL:
        """The absolute URL of a path, parsed once: httpx parses and joins a relative path with
        the base URL on every request (about 70 us), and a source's routes repeat."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()  # task and entity paths are many; the write routes come back
            url = self._urls[path] = client.build_request("GET", path).url
        return url

    def close(self) -> None:
        """Closes this process's pooled connections; the session cannot be used afterwards."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            owned = self._pid == os.getpid()
        if client is not None and owned:
            client.close()
