"""Durations as people write them: `90s`, `30m`, `8h`, `7d`."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAMES = {"d": "day", "h": "hour", "m": "minute", "s": "second"}
_PATTERN = re.compile(r"(\d{1,9})([smhd])")


def parse(text: str) -> timedelta:
    """`30m` -> 30 minutes. Raises ValueError with a message fit to show the user."""
    match = _PATTERN.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration; write a whole number and a unit, like 90s, 30m, 8h or 7d")
    return timedelta(seconds=int(match[1]) * UNITS[match[2]])


def largest_unit(value: timedelta) -> tuple[int, str]:
    """The duration as (count, unit) in the largest unit that divides it exactly."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % UNITS[unit] == 0:
            return seconds // UNITS[unit], unit
    return seconds, "s"


def compact(value: timedelta) -> str:
    """`timedelta(hours=8)` -> `8h`, the inverse of parse."""
    count, unit = largest_unit(value)
    return f"{count}{unit}"


def human(value: timedelta) -> str:
    """`timedelta(minutes=90)` -> `1 hour 30 minutes`."""
    rest = int(value.total_seconds())
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, rest = divmod(rest, UNITS[unit])
        if count:
            parts.append(f"{count} {_NAMES[unit]}{'' if count == 1 else 's'}")
    return " ".join(parts) or "0 seconds"
