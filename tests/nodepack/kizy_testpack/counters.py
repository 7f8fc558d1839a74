"""Run counters the tests read to see which nodes really ran (cached nodes do not count).

Module-level state is fine here and only here: real nodes keep no global state (CONVENTIONS 8).
"""

from __future__ import annotations

from collections import Counter

RUNS: Counter[str] = Counter()
"""Calls of ``run`` per node type (every attempt counts)."""
ATTEMPTS: Counter[str] = Counter()
"""Attempts per ``flaky`` key."""
STEPS: Counter[str] = Counter()
"""Steps completed per ``slow_steps`` label."""


def reset() -> None:
    RUNS.clear()
    ATTEMPTS.clear()
    STEPS.clear()
