"""What the kernel's verifier spends on the shipped objects (issue 17's start-up
goal): every program of hids.ringbuf.bpf.o, loaded through libbpf, is checked
in well under the instructions its loops once took (over 400,000 for the exec
programs and sendmmsg, walked entry by entry; bpf/'s HIDS_LOOP makes them
bpf_loop steps)."""
import pytest

from sdxfer import Sensor
from sdxfer.kernel import objects

pytestmark = pytest.mark.live

PROCESSED_MAX = 150_000   # the exec probe: about 86,000 on kernel 6.18


def test_every_shipped_program_verifies_in_few_instructions():
    shipped = objects.shipped()
    with Sensor(shipped.object("ringbuf"), programs=shipped.programs(), quiet=True, detach_waits=False) as sensor:
        processed = sensor.verifier_processed()
    assert "raw_tracepoint__sched_process_exec" in processed
    assert {name: n for name, n in processed.items() if n > PROCESSED_MAX} == {}
