"""Exec storm: is every exec accounted for, delivered or reported lost?

Two exec loops run in parallel for 10 s at the machine's ceiling while the
probe is open on one transport and this process reads it; then the same on
the other transport. For each, it prints execs performed by the loops, their
events delivered, events reported lost (the probe's drop counters, on both
transports), sequence gaps as a cross-check (never more than lost), and the
probe's own count of records it numbered (delivered + lost + undecodable must
equal it, whoever exec'd).

    sudo .venv/bin/python bench/storm.py [--seconds 10] [--loops 2]
"""

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kernel_cost import build_exec_loop, loop_result, start_loop
from sdxfer.loader import ExecProbe

SETTLE_S = 0.5  # after the loops end, for the last batched records


def storm(binary: Path, transport: str, seconds: float, loops: int, stall: float) -> dict:
    marker = f"storm-{uuid.uuid4().hex[:12]}"
    counts = {"marked": 0, "other": 0}
    with ExecProbe(transport=transport) as probe:
        stop = threading.Event()

        def count(events):
            for event in events:
                counts["marked" if event.argv == ["/bin/true", marker] else "other"] += 1

        def read_all():
            time.sleep(stall)  # a consumer that falls behind makes the buffers overflow
            count(probe.events(stop.is_set))

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        started = time.monotonic()
        running = [start_loop(binary, seconds, [marker]) for _ in range(loops)]
        performed = sum(loop_result(loop)[0] for loop in running)
        elapsed = time.monotonic() - started
        time.sleep(SETTLE_S)
        stop.set()
        reader.join()
        count(probe.decoded(probe.drain()))
        sequenced = probe.records_sequenced()
        stats = probe.stats
    return {
        "transport": transport, "performed": performed, "rate": performed / elapsed,
        "delivered": counts["marked"], "other": counts["other"], "lost": stats.lost,
        "undecodable": stats.undecodable, "gaps": stats.sequence_gaps, "sequenced": sequenced,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--loops", type=int, default=2, help="parallel exec loops")
    parser.add_argument("--stall", type=float, default=0.0,
                        help="seconds the reader sleeps before reading, to force loss and check its accounting")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("storm: run as root (sudo)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as workdir:
        binary = build_exec_loop(Path(workdir))
        results = [storm(binary, transport, args.seconds, args.loops, args.stall) for transport in ("perf", "ringbuf")]

    stalled = f", reader stalled {args.stall:g} s" if args.stall else ""
    print(f"{args.loops} exec loops x {args.seconds:g} s, per transport{stalled}")
    print(f"{'transport':<9} {'execs':>8} {'execs/s':>8} {'delivered':>9} {'lost':>6} {'seq gaps':>8} "
          f"{'other':>6} {'sequenced':>9}  accounted")
    for r in results:
        everything = r["delivered"] + r["other"] + r["lost"] + r["undecodable"] == r["sequenced"]
        everything = everything and r["gaps"] <= r["lost"] + r["undecodable"]
        loops_covered = r["delivered"] + r["lost"] >= r["performed"] and r["delivered"] <= r["performed"]
        verdict = "yes" if everything and loops_covered else "NO"
        print(f"{r['transport']:<9} {r['performed']:>8} {r['rate']:>8.0f} {r['delivered']:>9} {r['lost']:>6} "
              f"{r['gaps']:>8} {r['other']:>6} {r['sequenced']:>9}  {verdict}")
    perf, ring = results
    print(f"perf vs ring buffer: delivered {perf['delivered']} vs {ring['delivered']}, "
          f"lost {perf['lost']} vs {ring['lost']}, exec rate {perf['rate']:.0f}/s vs {ring['rate']:.0f}/s")
    print("accounted: delivered + other + lost (+ undecodable) == records the probe numbered, sequence "
          "gaps <= lost, and the loops' execs are all delivered or counted lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
