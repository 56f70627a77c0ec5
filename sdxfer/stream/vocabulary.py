"""The one JSON object of an event, whichever tool prints or ships it: the
event's to_dict() plus `time` (ISO 8601 UTC) and `timestamp_ns`; a consumer
adds `host`. Clock turns kernel timestamps into wall-clock time."""
from __future__ import annotations

import datetime
import json
import time


class Clock:
    """Turns kernel timestamps (CLOCK_MONOTONIC ns) into wall-clock time."""

    def __init__(self, start_ns: int | None = None, wall_minus_mono_ns: int | None = None):
        # another host's offset turns that host's kernel timestamps into wall time
        self.wall_minus_mono_ns = time.time_ns() - time.monotonic_ns() if wall_minus_mono_ns is None \
            else wall_minus_mono_ns
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns

    def wall(self, timestamp_ns: int) -> datetime.datetime:
        # integer arithmetic: ns / 1e9 as a float loses microseconds at today's epoch
        seconds, ns = divmod(timestamp_ns + self.wall_minus_mono_ns, 1_000_000_000)
        return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc) + datetime.timedelta(
            microseconds=ns // 1000)

    def iso(self, timestamp_ns: int) -> str:
        return self.wall(timestamp_ns).isoformat(timespec="microseconds").replace("+00:00", "Z")

    def local_hms(self, timestamp_ns: int) -> str:
        return self.wall(timestamp_ns).astimezone().strftime("%H:%M:%S")

    def seconds_since_start(self, timestamp_ns: int) -> float:
        return (timestamp_ns - self.start_ns) / 1e9


def event_object(event, clock: Clock, **extra) -> dict:
    """The event's JSON object: to_dict(), `time`, `timestamp_ns`, then extra keys (a consumer's `host`)."""
    record = event.to_dict()
    record["time"] = clock.iso(event.timestamp_ns)
    record["timestamp_ns"] = event.timestamp_ns
    record.update(extra)
    return record


def event_json(event, clock: Clock, **extra) -> str:
    return json.dumps(event_object(event, clock, **extra), ensure_ascii=True)
