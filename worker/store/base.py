"""The plumbing every part of `Store` shares: the client, the settings, the scripts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import NoScriptError

from worker.store import keys
from worker.store.codec import text
from worker.store.scripts import Scripts

if TYPE_CHECKING:
    from redis.client import Pipeline
    from redis.commands.core import Script

    from worker.settings import IngestSettings


def to_int(value: Any, default: int = 0) -> int:
    """A reply value as an integer (Redis answers numbers as text)."""
    raw = text(value)
    if not raw:
        return default
    return int(float(raw))


class StoreBase:
    """A redis-py client, the settings the scripts are given, and the registered scripts.

    Args:
        client: a redis-py client (responses decoded or not); it connects on first use.
        settings: TTLs, caps and durations the scripts are given.
    """

    def __init__(self, client: redis.Redis, settings: IngestSettings) -> None:
        self.client = client
        self.settings = settings
        self._scripts = Scripts.register(client)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- plumbing -------------------------------------------------------------------------------

    def _run(self, script: Script, source: str, *args: str) -> Any:
        return script(keys=[keys.prefix(source)], args=list(args))

    def _run_many(
        self,
        calls: Sequence[tuple[Script, str, Sequence[str]]],
        prelude: Callable[[Pipeline], None] | None = None,
    ) -> list[Any]:
        """Plain commands (`prelude`) and script calls in one round trip; the scripts' answers.

        A script call that Redis did not know (NOSCRIPT) did nothing, so it is loaded and run
        again on its own; any other error is raised once every command has run.
        """
        pipe = self.client.pipeline(transaction=False)
        if prelude is not None:
            prelude(pipe)
        plain = len(pipe)
        for script, source, args in calls:
            pipe.evalsha(script.sha, 1, keys.prefix(source), *args)
        results = pipe.execute(raise_on_error=False)
        for result in results[:plain]:
            if isinstance(result, Exception):
                raise result
        answers = list(results[plain:])
        for index, result in enumerate(answers):
            if isinstance(result, NoScriptError):
                script, source, args = calls[index]
                answers[index] = self._run(script, source, *args)
            elif isinstance(result, Exception):
                raise result
        return answers
