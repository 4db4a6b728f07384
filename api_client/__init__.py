"""The Clinia Registry HTTP contract: typed models, a client, errors, retries and task references.

The public names are exported lazily (PEP 562), so that `import api_client.models` in the pure core
never drags in httpx. Knows nothing of `worker`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names for type checkers; at run time they load on first use
    from api_client._client import (
        RegistryClient,
    )
    from api_client.config import (
        ClientConfig,
    )
    from api_client.errors import (
        AlreadyExistsError,
        APIError,
        AuthError,
        ContractError,
        InvalidPathSegmentError,
        InvalidRequestError,
        NotFoundError,
        OutcomeUnknownError,
        PermissionDeniedError,
        RateLimitedError,
        RegistryError,
        RequestTimeoutError,
        SentRequest,
        ServerError,
        ServiceUnavailableError,
        TaskStillPendingError,
        TransportError,
        UnauthenticatedError,
    )
    from api_client.retry import (
        RetryDecision,
        RetryPolicy,
        Verdict,
        backoff_s,
        decide,
        parse_retry_after,
    )
    from api_client.tasks import (
        IssuedBy,
        PollRoute,
        TaskKind,
        TaskRef,
    )
    from api_client.waiting import (
        PollPolicy,
        wait_for_task,
    )

# public name -> defining module. Models live in `api_client.models`; import them from there.
_EXPORTS: dict[str, str] = {
    "RegistryClient": "api_client._client",
    "ClientConfig": "api_client.config",
    "APIError": "api_client.errors",
    "AlreadyExistsError": "api_client.errors",
    "AuthError": "api_client.errors",
    "ContractError": "api_client.errors",
    "InvalidPathSegmentError": "api_client.errors",
    "InvalidRequestError": "api_client.errors",
    "NotFoundError": "api_client.errors",
    "OutcomeUnknownError": "api_client.errors",
    "PermissionDeniedError": "api_client.errors",
    "RateLimitedError": "api_client.errors",
    "RegistryError": "api_client.errors",
    "RequestTimeoutError": "api_client.errors",
    "SentRequest": "api_client.errors",
    "ServerError": "api_client.errors",
    "ServiceUnavailableError": "api_client.errors",
    "TaskStillPendingError": "api_client.errors",
    "TransportError": "api_client.errors",
    "UnauthenticatedError": "api_client.errors",
    "RetryDecision": "api_client.retry",
    "RetryPolicy": "api_client.retry",
    "Verdict": "api_client.retry",
    "backoff_s": "api_client.retry",
    "decide": "api_client.retry",
    "parse_retry_after": "api_client.retry",
    "IssuedBy": "api_client.tasks",
    "PollRoute": "api_client.tasks",
    "TaskKind": "api_client.tasks",
    "TaskRef": "api_client.tasks",
    "PollPolicy": "api_client.waiting",
    "wait_for_task": "api_client.waiting",
}

__all__ = [
    "APIError",
    "AlreadyExistsError",
    "AuthError",
    "ClientConfig",
    "ContractError",
    "InvalidPathSegmentError",
    "InvalidRequestError",
    "IssuedBy",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "PollPolicy",
    "PollRoute",
    "RateLimitedError",
    "RegistryClient",
    "RegistryError",
    "RequestTimeoutError",
    "RetryDecision",
    "RetryPolicy",
    "SentRequest",
    "ServerError",
    "ServiceUnavailableError",
    "TaskKind",
    "TaskRef",
    "TaskStillPendingError",
    "TransportError",
    "UnauthenticatedError",
    "Verdict",
    "backoff_s",
    "decide",
    "parse_retry_after",
    "wait_for_task",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'api_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
