"""The transport: one pooled `httpx` transport per process, and the headers every request carries.

Requests go straight to an `httpx.HTTPTransport` (connection pool, timeouts per request), not
through `httpx.Client`: the client's cookie jar, auth and redirect machinery and its header and
URL merging cost about a quarter of each request's CPU, and this session uses none of them
(redirects are not followed, nothing is read from the environment). The transport is created on
the first request, and again in a process forked after that, so a worker can fork first. An
httpx exception raised while sending becomes ours through `_http.error_for_httpx`.
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
    """Owns the pooled transport: created on first use in each process, closed once."""

    def __init__(self, config: ClientConfig, transport: httpx.BaseTransport | None) -> None:
        self._config = config
        self._given = transport
        self._transport: httpx.BaseTransport | None = None
        self._pid: int | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._base = httpx.URL(config.base_url.rstrip("/") + "/")
        self._urls: dict[str, httpx.URL] = {}
        self._timeout = {
            "connect": config.connect_timeout_s,
            "read": config.read_timeout_s,
            "write": config.write_timeout_s,
            "pool": config.pool_timeout_s,
        }
        self._headers = {
            API_KEY_HEADER: config.api_key.get_secret_value(),
            "User-Agent": config.user_agent,
            "Accept": "application/json",
        }

    def _build(self) -> httpx.BaseTransport:
        if self._given is not None:
            return self._given
        config = self._config
        return httpx.HTTPTransport(
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_keepalive_connections,
                keepalive_expiry=config.keepalive_expiry_s,
            ),
            trust_env=False,
        )

    def _current(self) -> httpx.BaseTransport:
        pid = os.getpid()
        with self._lock:
            if self._closed:
                raise RuntimeError("this RegistryClient is closed")
            if self._transport is None or self._pid != pid:
                # A pool inherited through fork shares sockets with the parent: leave it alone.
                self._transport = self._build()
                self._pid = pid
            return self._transport

    @property
    def started(self) -> bool:
        """Whether this process has created its transport yet."""
        return self._transport is not None and self._pid == os.getpid()

    def send(self, call: Call) -> httpx.Response:
        """Sends `call` once and returns the answer, read in full.

        Raises:
            TransportError: no answer (`RequestTimeoutError` for a timeout).
            ContractError: an answer that could not be decoded.
        """
        transport = self._current()
        headers = self._headers
        if call.body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        try:
            url = self._url(call.path)
            if call.params:
                url = url.copy_merge_params(call.params)
            request = httpx.Request(
                call.method, url, content=call.body, headers=headers,
                extensions={"timeout": self._timeout},
            )  # fmt: skip
            response = transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
            return response
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise error_for_httpx(exc, call) from exc

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL of a path, joined to the base URL once: a source's routes repeat."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()  # task and entity paths are many; the write routes come back
            url = self._urls[path] = self._base.join(path.lstrip("/"))
        return url

    def close(self) -> None:
        """Closes this process's pooled connections; the session cannot be used afterwards."""
        with self._lock:
            self._closed = True
            transport, self._transport = self._transport, None
            owned = self._pid == os.getpid()
        if transport is not None and owned:
            transport.close()
