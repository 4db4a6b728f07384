"""Logging for the worker and the CLI: structlog over stdlib logging, secrets and payloads kept out.

Two guards, because log lines come from two kinds of code:
- our own structlog calls pass through `Redactor` as a processor: a value under a secret-looking
  key is replaced, a value under a payload key (event data, whole events) is reduced to a count,
  and every string is scrubbed of URL passwords and of the known secret values;
- lines that Celery, kombu or redis-py write through stdlib logging pass through `RedactingFilter`
  on the handlers, which scrubs the formatted message and traceback the same way.

Event and health data is never logged beyond ids (invariant 9): log ids and counts.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

import structlog
from pydantic import SecretStr

if TYPE_CHECKING:
    from worker.settings import IngestSettings

REDACTED: Final = "[redacted]"
MIN_SECRET_LENGTH: Final = 4
"""Shorter known secrets are not searched for in text: they would blank ordinary words."""
MAX_DEPTH: Final = 4
"""How deep nested values are searched; deeper ones are replaced whole."""

SECRET_KEY_PATTERN: Final = re.compile(
    r"api[_-]?key|password|passwd|secret|token|authorization|credential|cookie", re.IGNORECASE
)
"""Keys whose values are secrets whatever they hold."""
PAYLOAD_KEYS: Final = frozenset(
    {"data", "contained", "meta", "events", "payload", "body", "operations", "raw"}
)
"""Keys whose values are event payloads (health data): never logged, only counted. (`event` is
structlog's message key, so it is scrubbed like any string, not dropped.)"""
_URL_PASSWORD: Final = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?P<at>@)"
)


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every `scheme://user:password@` URL in it masked."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['at']}", text)


def url_password(url: str) -> str | None:
    """The password a URL carries, decoded, or None."""
    found = _URL_PASSWORD.search(url)
    return unquote(found["password"]) if found else None


def secrets_of(settings: IngestSettings) -> list[str]:
    """Every secret value the settings hold: the API key and the passwords in the Redis URLs."""
    values = [settings.api_key.get_secret_value()]
    for url in (settings.redis_url, settings.broker_url):
        if url is not None:
            password = url_password(url.get_secret_value())
            if password:
                values.append(password)
    return values


class Redactor:
    """Scrubs secrets and payloads out of log events; also a structlog processor.

    Args:
        secrets: known secret values (an API key, a Redis password), replaced wherever they
            appear in a string; values shorter than MIN_SECRET_LENGTH are ignored.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = {value for value in secrets if len(value) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted(known, key=len, reverse=True)

    def text(self, value: str) -> str:
        """`value` with URL passwords and known secrets replaced."""
        scrubbed = mask_url_passwords(value)
        for secret in self._secrets:
            if secret in scrubbed:
                scrubbed = scrubbed.replace(secret, REDACTED)
        return scrubbed

    def value(self, key: str, value: Any, depth: int = 0) -> Any:
        """What may be logged of `value` found under `key`."""
        if SECRET_KEY_PATTERN.search(key):
            return REDACTED
        if key.lower() in PAYLOAD_KEYS:
            return _payload_summary(value)
        return self._scrub(value, depth)

    def _scrub(self, value: Any, depth: int) -> Any:
        if isinstance(value, SecretStr):
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        if depth >= MAX_DEPTH:
            return f"<{type(value).__name__} omitted>"
        if isinstance(value, Mapping):
            return {str(k): self.value(str(k), v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._scrub(item, depth + 1) for item in value]
        if isinstance(value, BaseException):
            return self.text(f"{type(value).__name__}: {value}")
        return self.text(str(value))

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """The structlog processor: every key of the event, scrubbed."""
        for key in list(event_dict):
            event_dict[key] = self.value(key, event_dict[key])
        return event_dict


def _payload_summary(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"<{len(value)} items omitted>"
    return "<payload omitted>"


class RedactingFilter(logging.Filter):
    """A handler filter that scrubs the final message and traceback of every stdlib record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep the template only
            message = str(record.msg)
        record.msg = self.redactor.text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redactor.text(_FORMATTER.formatException(record.exc_info))
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


def install_filter(handlers: Iterable[logging.Handler], redactor: Redactor) -> None:
    """Add a RedactingFilter to each handler that has none yet."""
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))


def configure_structlog(redactor: Redactor, *, json: bool = False) -> None:
    """Send structlog events through stdlib logging (so Celery's handlers print them), scrubbed."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure_cli_logging(
    secrets: Iterable[str] = (), *, level: int = logging.WARNING, json: bool = False
) -> Redactor:
    """Logging for a command-line process: one scrubbed stderr handler on the root logger."""
    redactor = Redactor(secrets)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
    install_filter(root.handlers, redactor)
    configure_structlog(redactor, json=json)
    return redactor


def get_logger(name: str) -> Any:
    """A structlog logger; log ids and counts, never payloads."""
    return structlog.stdlib.get_logger(name)
