"""What `rakuten.serve` checks of a JSON request body before MLflow's scoring app reads it.

A body is parsed once here: invalid JSON, nesting deeper than `MAX_JSON_DEPTH` and more rows than
the server's `--max-rows` are refused with a short answer, never the input echoed back. A body over
`INLINE_BYTES` is parsed in a worker process, so that the server's event loop (and the GIL its other
requests need) stays free: an 18 MB body takes the worker a second or two, a 1-row request beside it
is answered meanwhile.
"""

from __future__ import annotations

import json

MAX_JSON_DEPTH = 64
INLINE_BYTES = 256 * 1024  # parsed in the request's own thread below this (a few ms)
ROW_KEYS = ("dataframe_records", "instances", "inputs")


def payload_rows(payload) -> int:
    """How many rows an MLflow scoring payload holds (`dataframe_split`, `dataframe_records`, ...)."""
    if isinstance(payload, list):
        return len(payload)
    if not isinstance(payload, dict):
        return 1
    split = payload.get("dataframe_split")
    if isinstance(split, dict):
        return len(split.get("data") or [])
    found = next((payload[key] for key in ROW_KEYS if key in payload), None)
    return len(found) if isinstance(found, list | dict) else 1


def _deeper_than(value, limit: int) -> bool:
    """Whether parsed JSON nests arrays or objects deeper than `limit`."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def problem(body: bytes, max_rows: int) -> tuple[int, str] | None:
    """(status, message) for a body to refuse, None for one to hand on. Nesting deeper than the
    parser's recursion limit fails the parse; deeper than `MAX_JSON_DEPTH`, the walk after it."""
    try:
        payload = json.loads(body)
    except RecursionError:
        return 400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as error:  # the first line of the parser's message: where, not what was sent
        return 400, f"invalid JSON: {str(error).splitlines()[0][:200]}"
    rows = payload_rows(payload)
    if rows > max_rows:
        return 413, f"{rows:,} rows: more than this server's --max-rows ({max_rows:,}); send them in batches"
    if _deeper_than(payload, MAX_JSON_DEPTH):
        return 400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    return None
