"""The engine: runs one prompt on N models and streams events that fill the run's record.

scheduler.py holds the Engine and its loop; column.py a column's state machine; loading.py
the loader threads; served.py the served columns' workers; prompting.py grounding, templating
and anomaly checks; figures.py each column's own time, memory and a server's report.
"""

from playground.engine.scheduler import DEFAULT_LOAD_TIMEOUT_S, Engine
from playground.params import MAX_NEW_TOKENS_LIMIT
from playground.requests import (
    AttentionLimits,
    ColumnRequest,
    Event,
    RequestError,
    RunRequest,
    validate_request,
)

__all__ = [
    "DEFAULT_LOAD_TIMEOUT_S", "MAX_NEW_TOKENS_LIMIT", "AttentionLimits", "ColumnRequest", "Engine", "Event",
    "RequestError", "RunRequest", "validate_request",
]
