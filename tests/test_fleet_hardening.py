"""The sensor side of issue 16: what a full disk, a corrupt spool, a small
max_payload, a server that goes away, a hostile stream reader or another
local user do to --output, without a kernel (the sensor's own events: see
test_fleet_live.py)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sdxfer.fleet import envelope

from conftest import wait_until
from nats_support import NatsServer
from test_fleet import fake_record, publisher


def stream_messages(nats: NatsServer, stream: str) -> list[tuple[str, bytes]]:
    """Every message the stream holds, oldest first: (Nats-Msg-Id, data)."""
    import nats as nats_py

    async def read():
        nc = await nats_py.connect(f"nats://127.0.0.1:{nats.port}")
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            got = []
            for sequence in range(info.state.first_seq, info.state.last_seq + 1):
                message = await js.get_msg(stream, sequence)
                got.append(((message.headers or {}).get("Nats-Msg-Id"), message.data))
            return got
        finally:
            await nc.close()

    return asyncio.run(read())


@pytest.fixture
def small_server(tmp_path):
    """A nats-server whose max_payload is 8 KiB, not started."""
    conf = tmp_path / "small.conf"
    conf.write_text("max_payload: 8192\n")
    nats = NatsServer(tmp_path / "store", "-c", str(conf))
    yield nats
    nats.kill()


def test_no_message_above_max_payload_and_an_event_too_big_for_one_is_split(small_server):
    """Item 1: a spanning event larger than a message goes in several, in
    order; a record larger than a message is dropped, counted and named once."""
    small_server.start()
    out = publisher(small_server.url("fleet.small"))
    wait_until(lambda: out.nats.max_payload == 8192, what="the server's max_payload")
    spanning = [fake_record(bytes([65 + n]) * 3000) for n in range(8)]  # one event: a record, 7 continuations
    small = [fake_record(b"s%d" % n) for n in range(50)]
    huge = [fake_record(b"h" * 9000), fake_record(b"i" * 9000)]
    out.send([(b"".join(spanning), None), (huge[0], None)] + [(raw, None) for raw in small] + [(huge[1], None)])
    notes = out.notices()
    summary = out.close()
    messages = [data for _, data in stream_messages(small_server, "FLEET_SMALL")]
    assert len(messages) > 3 and all(len(data) <= 8192 for data in messages)
    assert [record for data in messages for record in envelope.unpack(data).records] == spanning + small
    assert "51 events published" in summary and "2 dropped (above the server's max_payload of 8192" in summary
    assert len([note for note in notes if "max_payload" in note]) == 1, notes


def test_a_message_built_before_the_server_said_its_limit_does_not_block_the_rest(small_server):
    """Item 1: a message queued while the server was away, above the limit it
    gives at connect, is dropped and said; the later ones are published."""
    out = publisher(small_server.url("fleet.late"))
    out.send([(fake_record(b"x" * 20000), None)])  # fits NATS's default 1 MiB
    out.send([(fake_record(b"after"), None)])
    small_server.start()
    notes = wait_until(lambda: out.notices(), what="a line about the oversized message")
    summary = out.close()
    assert "above the server's max_payload (8192 bytes): dropped" in notes[0] and len(notes) == 1, notes
    assert "1 events published" in summary and "1 dropped (above the server's max_payload" in summary, summary
    (message,) = stream_messages(small_server, "FLEET_LATE")
    assert envelope.unpack(message[1]).records == [fake_record(b"after")]
