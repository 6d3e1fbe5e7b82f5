"""librdkafka's own log lines, through structlog, one line per distinct message per 30 s.

Without a logger librdkafka writes raw `%3|...|FAIL|...` lines to stderr, one per failed connect
(about 20 a second when nothing listens at the broker address). confluent-kafka hands each line to
the `logger` config key's `log(level, "%s [%s] %s", facility, client, message)`, with librdkafka's
syslog severity (0-7) already turned into a `logging` level: 0-2 CRITICAL, 3 ERROR, 4 WARNING,
5-6 INFO, 7 DEBUG. That level picks the structlog method here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from connector.runtime.logs import RateLimiter, get_logger

REPEAT_WINDOW_S = 30.0

# Parts of a line that change on every repeat of the same condition; left in, every reconnect
# line would be a "distinct" message and nothing would be held back.
_THREAD_PREFIX = re.compile(r"^\[thrd:[^\]]*\]: ")
_ELAPSED = re.compile(r"\d+ms")


def method_for(level: int) -> str:
    """The structlog method for a `logging` level as confluent-kafka passes it."""
    if level >= logging.CRITICAL:
        return "critical"
    if level >= logging.ERROR:
        return "error"
    if level >= logging.WARNING:
        return "warning"
    if level >= logging.INFO:
        return "info"
    return "debug"


class LibrdkafkaLogs:
    """The object confluent-kafka's `logger` key takes: `log(level, format, *args)`.

    `reported_by_caller`: the command reports failures itself in one line (`check`, `dlq`,
    `produce-sample`), so librdkafka's lines are kept at debug level, still rate-limited.
    """

    def __init__(
        self,
        logger: Any = None,
        *,
        reported_by_caller: bool = False,
        window_s: float = REPEAT_WINDOW_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._logger = logger if logger is not None else get_logger("librdkafka")
        self._reported_by_caller = reported_by_caller
        self._limiter = RateLimiter(window_s) if clock is None else RateLimiter(window_s, clock)

    def log(self, level: int, message: str, *args: object) -> None:
        if len(args) == 3:  # confluent-kafka's ("%s [%s] %s", facility, client, text)
            facility, client, text = (str(a) for a in args)
        else:
            facility, client, text = "", "", (message % args if args else message)
        text = _THREAD_PREFIX.sub("", text)
        suppressed = self._limiter.admit((level, facility, client, _ELAPSED.sub("#ms", text)))
        if suppressed is None:
            return
        method = "debug" if self._reported_by_caller else method_for(level)
        fields: dict[str, object] = {"kafka_client": client, "facility": facility}
        if suppressed:
            fields["suppressed"] = suppressed
        getattr(self._logger, method)(text, **fields)
