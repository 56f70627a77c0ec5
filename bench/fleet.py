"""Fleet throughput: events/s from a sensor into NATS JetStream and out through
a consumer, beside the local hidsmon rate, in the same run.

A C loop renames itself with prctl(PR_SET_NAME) as fast as it can (hidsmon's
prctl event, one cheap syscall each) while hidsmon's probe is open:

- local:      decoded and rendered as hidsmon --json lines (to /dev/null)
- publish:    decoded, accepted and published in envelopes, until JetStream acked all
- consume:    pulled from the stream and decoded by the fleet Consumer

Each rate is events over the time from the loop's start to the last event
handled. A nats-server with JetStream is started on 127.0.0.1 for the run.

    sudo .venv/bin/python bench/fleet.py [--events 200000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from c_program import compile_c  # noqa: E402
from nats_support import NatsServer  # noqa: E402 (the tests' server, started the same way)
from sdxfer import hids  # noqa: E402
from sdxfer.console import Clock  # noqa: E402
from sdxfer.fleet.output import add_output_arguments, open_output  # noqa: E402
from sdxfer.hidsmon import json_line  # noqa: E402
from sdxfer.sensor import Sensor  # noqa: E402

LOOP_C = r"""
#include <stdlib.h>
#include <sys/prctl.h>
int main(int argc, char **argv)
{
    long n = atol(argv[1]);
    for (long i = 0; i < n; i++)
        prctl(PR_SET_NAME, "fleetbench");
    return 0;
}
"""


def pump(sensor, binary: Path, count: int, handle) -> tuple[int, float]:
    """Runs the loop and hands its events to handle(pairs); (events, seconds to the last)."""
    started = time.monotonic()
    child = subprocess.Popen([str(binary), str(count)])
    seen, last = 0, started
    while True:
        done = child.poll() is not None
        pairs = [(raw, e) for raw, e in sensor.decoded_records(sensor.read(50)) if e.pid == child.pid]
        if pairs:
            handle(pairs)
            seen += len(pairs)
            last = time.monotonic()
        if done and not pairs:
            return seen, last - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fleet_bench"))
    binary = compile_c(LOOP_C, folder, "prctl_loop")
    server = NatsServer(folder / "store")
    server.start()
    url = server.url("bench.fleet")
    try:
        with Sensor(hids.PROGRAM, defines=hids.defines_for(["prctl"]), perf_pages=1024) as sensor:
            clock = Clock()
            null = open(os.devnull, "w")
            local, local_s = pump(sensor, binary, options.events,
                                  lambda pairs: null.write("\n".join(json_line(e, clock) for _, e in pairs) + "\n"))
            lost_local = sensor.stats.lost

            args = argparse.ArgumentParser()
            add_output_arguments(args)
            output = open_output(args.parse_args(["--output", url]), sensor.decoder, ROOT / "schema" / "events.yaml")
            started = time.monotonic()
            published, _ = pump(sensor, binary, options.events, output.send)
            while output.nats.stats.published_events < published and time.monotonic() - started < 120:
                time.sleep(0.005)
            publish_s = time.monotonic() - started
            acked = output.nats.stats.published_events
            output.close()
            lost_fleet = sensor.stats.lost - lost_local
        from sdxfer.fleet import Consumer

        consumed = 0
        started = time.monotonic()
        with Consumer(url) as consumer:
            last = started
            for _ in consumer.events(lambda: consumed >= acked or time.monotonic() - last > 5):
                consumed += 1
                last = time.monotonic()
        consume_s = last - started
    finally:
        server.kill()
    print(f"prctl loop of {options.events} events per run; kernel-side loss: local {lost_local}, fleet {lost_fleet}")
    for what, events, seconds in (("local hidsmon (decode + --json lines)", local, local_s),
                                  ("sensor -> JetStream (acked)", acked, publish_s),
                                  ("JetStream -> consumer (decoded)", consumed, consume_s)):
        print(f"  {what:<40} {events:8d} events in {seconds:6.2f} s = {events / seconds:10,.0f} events/s")


if __name__ == "__main__":
    main()
