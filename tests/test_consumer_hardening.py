"""`sdxfer consume` against hostile or early input (issue 16, items 10-13):
started before any stream, fed hostile messages, hosts that claim to be
others, envelopes built to amplify work. Through a real nats-server on
loopback (tests/nats_support.py) unless the piece needs none."""
from __future__ import annotations

import asyncio
import json
import re
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sdxfer.fleet import envelope
from sdxfer.fleet.nats_io import Endpoint, FleetError, StreamLimits
from sdxfer.record import HEADER_OFFSETS, HEADER_SIZE

from conftest import Tool, wait_until
from nats_support import NatsServer
from test_fleet import HOST, MAJOR, SDXFER, fake_record, packer, publisher  # noqa: F401 (packer: a fixture)

ROOT = Path(__file__).resolve().parent.parent
TERMINAL_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # newline ends a line


def run(coroutine):
    return asyncio.run(coroutine)


async def _publish(server_url: str, messages: list[tuple[str, bytes]], **options) -> list[str]:
    """Publishes to JetStream as any client could; what each publish raised ('' when acked)."""
    import nats

    nc = await nats.connect(server_url, **options)
    js = nc.jetstream(timeout=2)
    outcomes = []
    for subject, data in messages:
        try:
            await js.publish(subject, data)
            outcomes.append("")
        except Exception as exc:
            outcomes.append(type(exc).__name__)
    await nc.close()
    return outcomes


def publish(server: NatsServer, messages: list[tuple[str, bytes]], **options) -> list[str]:
    return run(_publish(f"nats://127.0.0.1:{server.port}", messages, **options))


def json_event(machine_id: str = HOST.machine_id, **fields) -> bytes:
    """A JSON-wire event as a sensor with --wire json sends it."""
    record = {"event": "note", **fields, "time": "2026-01-01T00:00:00.000000000Z", "timestamp_ns": 1,
              "host": {"hostname": "web-1", "machine_id": machine_id, "boot_id": "b"}}
    return json.dumps(record).encode()


def envelope_of(records: list[bytes], count: int | None = None, host=HOST) -> bytes:
    """An envelope holding records exactly as given (pack() would trim them)."""
    sender = envelope.Sender.start(host, "d" * 64, MAJOR)
    head = envelope.pack(sender, 1, [])
    return head[:envelope._FIXED.size - 4] + struct.pack("<I", len(records) if count is None else count) \
        + head[envelope._FIXED.size:] + b"".join(records)


def decoder_for(subject: str = "fleet.unit"):
    import sdxfer
    from sdxfer.fleet.consume import MessageDecoder

    lines: list[str] = []
    return MessageDecoder(subject, sdxfer.default_decoder(), MAJOR, lines.append), lines


# ---- 13: amplification ---------------------------------------------------------------------------

def four_byte_records(count: int) -> list[bytes]:
    """Records that each claim 4 bytes (the size field of one is read from the
    ones after it), then a record that ends the message where its size says."""
    last = bytearray(fake_record(b""))
    last[:HEADER_OFFSETS["size"]] = struct.pack("<I", 4) * (HEADER_OFFSETS["size"] // 4)
    return [struct.pack("<I", 4)] * count + [bytes(last)]


def test_records_shorter_than_a_header_are_refused():
    with pytest.raises(envelope.EnvelopeError, match="record 0 of the envelope claims 4 bytes, shorter than a record"):
        envelope.unpack(envelope_of(four_byte_records(1000)))
    short = bytearray(HEADER_SIZE - 1)
    struct.pack_into("<I", short, HEADER_OFFSETS["size"], HEADER_SIZE - 1)
    with pytest.raises(envelope.EnvelopeError, match="shorter than a record header"):
        envelope.unpack(envelope_of([bytes(short)]))


def test_the_work_per_message_is_bounded():
    """A million header-sized records (48 MB) are refused by count before any
    is read; a message above the consumer's size bound is refused unread."""
    many = envelope_of([fake_record(b"")] * 1_000_000)
    started = time.process_time()
    with pytest.raises(envelope.EnvelopeError, match=f"more than the {envelope.MAX_RECORDS}"):
        envelope.unpack(many)
    assert time.process_time() - started < 0.1
    messages, lines = decoder_for()
    messages.max_message_bytes = 1 << 20
    assert list(messages.items(f"fleet.unit.{HOST.machine_id}", envelope_of([fake_record(b"x" * (2 << 20))]))) == []
    assert messages.stats.bad_messages == 1 and "more than 1048576" in lines[0]


# ---- 12: host identity from the subject; problems as they happen, bounded ---------------------

def test_the_host_is_the_subjects_and_a_body_that_disagrees_is_flagged(server, packer):
    url = server.url("fleet.who")
    out = publisher(url)  # the sensor's own path: SUBJECT.<machine-id>
    out.send([(raw, None) for raw in packer(["own"])])
    assert "1 events published" in out.close()
    liar = envelope.pack(envelope.Sender.start(envelope.Host("db-2", "m-db-2", "b"), "d", MAJOR), 1,
                         packer(["lie"]))
    assert publish(server, [("fleet.who.m-web-9", liar), ("fleet.who.m-web-9", json_event("m-db-2")),
                            ("fleet.who.a.b", json_event())]) == ["", "", ""]
    lines = []
    from sdxfer.fleet import Consumer

    with Consumer(url, report=lines.append) as consumer:
        deadline = time.monotonic() + 30
        got = list(consumer.events(lambda: consumer.stats.messages == 4 or time.monotonic() > deadline))
    assert [item.host.machine_id for item in got] == [HOST.machine_id, "m-web-9", "m-web-9"]
    assert got[1].host.hostname == "db-2" and got[1].to_dict()["host"]["machine_id"] == "m-web-9"
    assert got[2].record["host"]["machine_id"] == "m-web-9"
    assert lines.count("m-web-9: host mismatch: its body says machine 'm-db-2'") == 1
    assert "m-web-9: host mismatch: its body says machine 'm-db-2' (2 so far)" not in lines  # not 10 yet
    assert any(line.startswith("(bad subject): bad message: a message on 'fleet.who.a.b'") for line in lines)
    assert consumer.stats.bad_messages == 1 and consumer.problems.counts[("m-web-9", "host mismatch")] == 2


def test_subjects_that_cannot_name_a_host_are_one_line_at_start():
    from sdxfer.fleet import Consumer

    with pytest.raises(FleetError, match="machine id 'a.b' cannot name a NATS subject"):
        Endpoint.parse("nats://127.0.0.1:1/x").for_host("a.b")
    with pytest.raises(FleetError, match="without wildcards"):  # before any connection: port 1 is closed
        Consumer("nats://127.0.0.1:1/x.>")
    with pytest.raises(FleetError, match="not an inbox prefix"):
        Consumer("nats://127.0.0.1:1/x", inbox_prefix="_INBOX.>")


def test_problems_are_aggregated_per_host_and_kind_and_bounded():
    from sdxfer.fleet.consume import PROBLEM_KEYS

    messages, lines = decoder_for()
    for number in range(5 * PROBLEM_KEYS):
        assert list(messages.items(f"fleet.unit.host{number}", b"garbage")) == []
    for _ in range(100):
        list(messages.items("fleet.unit.host0", b"garbage"))
    counts = messages.problems.counts
    assert len(counts) == PROBLEM_KEYS + 1 and counts[("(other hosts)", "bad message")] == 4 * PROBLEM_KEYS
    assert counts[("host0", "bad message")] == 101
    # each host's first, then the 10th, 100th ... of a pair: not one line per message
    assert len(lines) == PROBLEM_KEYS + 4 + 2
    reason = "message of 7 bytes is shorter than an envelope header"
    assert f"host0: bad message: {reason} (100 so far)" in lines and f"host0: bad message: {reason}" in lines
    assert "host0: bad message: 101 in all" in messages.problems.summary()


def test_problems_are_said_when_they_happen_not_with_the_next_event(server, packer):
    url = server.url("fleet.now")
    out = publisher(url)
    out.send([(raw, None) for raw in packer(["first"])])
    out.close()
    consume = Tool(SDXFER, "consume", url)
    consume.wait_out(lambda line: "first" in line, timeout=30)
    publish(server, [(f"fleet.now.{HOST.machine_id}", b"SDXB garbage")])
    consume.wait_err(lambda line: "bad message" in line, timeout=10)
    err = consume.stop()
    assert consume.returncode == 0 and "Traceback" not in err
    assert f"{HOST.machine_id}: bad message: message of 12 bytes is shorter than an envelope header" in err


class Listener(threading.Thread):
    """A client subscribed to `subject`, keeping what it hears until stop()."""

    def __init__(self, server: NatsServer, subject: str, **options):
        super().__init__(daemon=True)
        self.url, self.subject, self.options = f"nats://127.0.0.1:{server.port}", subject, options
        self.heard: list[bytes] = []
        self.ready, self._stopping = threading.Event(), threading.Event()
        self.start()
        assert self.ready.wait(20), "the listener did not subscribe"

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        import nats

        async def keep(message) -> None:
            self.heard.append(message.data)

        nc = await nats.connect(self.url, **self.options)
        await nc.subscribe(self.subject, cb=keep)
        await nc.flush()
        self.ready.set()
        while not self._stopping.is_set():
            await asyncio.sleep(0.05)
        await nc.close()

    def stop(self) -> list[bytes]:
        self._stopping.set()
        self.join(20)
        return self.heard


FLEET_MD = (ROOT / "docs" / "fleet.md").read_text()
CONFIG = re.search(r"```conf\n(.*?)```", FLEET_MD, re.DOTALL).group(1)
INBOX_PREFIX = re.search(r"--inbox-prefix (_INBOX\w+)", FLEET_MD).group(1)


def test_each_host_may_publish_only_on_its_own_subject(tmp_path, monkeypatch, packer):
    """The nats-server configuration docs/fleet.md shows, with its two hosts
    and the central consumer: a host publishes its own events, not another's,
    and reads nothing back."""
    # the store is NatsServer's (-sd): the server refuses it twice
    (tmp_path / "nats.conf").write_text(CONFIG.replace("jetstream { store_dir: /var/lib/nats }", "jetstream: enabled"))
    ids = dict(re.findall(r"user: (\S+), password: \$(\w+)", CONFIG))
    machines = dict(re.findall(r'user: (\S+),.*?"sdxfer\.events\.(\w+)"', CONFIG, re.DOTALL))
    assert sorted(ids) == ["central", "db-2", "web-1"] and sorted(machines) == ["db-2", "web-1"]
    for variable in ids.values():
        monkeypatch.setenv(variable, f"pw-{variable}")
    nats = NatsServer(tmp_path / "store", "-c", str(tmp_path / "nats.conf"))
    nats.start()
    try:
        def url(user: str) -> str:
            return f"nats://{user}:pw-{ids[user]}@127.0.0.1:{nats.port}/sdxfer.events"

        from sdxfer.fleet import Consumer

        central = {"inbox_prefix": INBOX_PREFIX}
        # a central consumer started first creates the stream (hosts may not)
        Consumer(url("central"), create_stream=StreamLimits(), **central).close()
        as_web = {"user": "web-1", "password": f"pw-{ids['web-1']}"}
        listener = Listener(nats, "_INBOX.>", **as_web)  # a host listening to every answer it may
        for user in ("web-1", "db-2"):
            out = publisher(url(user), host=envelope.Host(user, machines[user], "b"))
            out.send([(raw, None) for raw in packer([f"from-{user}"])])
            assert "1 events published" in out.close()
        forged = envelope.pack(envelope.Sender.start(envelope.Host("db-2", machines["db-2"], "b"), "d", MAJOR), 1,
                               packer(["forged"]))
        assert publish(nats, [(f"sdxfer.events.{machines['db-2']}", forged)], **as_web) == ["TimeoutError"]
        lines = []
        with Consumer(url("web-1"), report=lines.append) as snoop:  # nor can a host read the stream
            deadline = time.monotonic() + 30
            assert list(snoop.events(lambda: lines or time.monotonic() > deadline)) == []
        assert lines[0].startswith("cannot read stream ") and "trying again" in lines[0]
        with Consumer(url("central"), **central) as consumer:
            deadline = time.monotonic() + 30
            got = list(consumer.events(lambda: consumer.stats.messages == 2 or time.monotonic() > deadline))
        heard = listener.stop()
    finally:
        nats.kill()
    assert sorted((item.host.machine_id, item.event.value("name")) for item in got) == \
        sorted((machines[user], f"from-{user}") for user in ("web-1", "db-2"))
    # the hosts' acks pass by on _INBOX.>, the events the central consumer pulls do not
    assert heard and not any(b"from-" in data for data in heard)


# ---- 10: a consumer started before any sensor -----------------------------------------------------

def test_a_consumer_started_first_waits_for_the_stream(server, packer):
    url = server.url("fleet.early")
    consume = Tool(SDXFER, "consume", url)
    consume.wait_err(lambda line: "waiting for a stream that holds fleet.early.>" in line, timeout=30)
    time.sleep(2.5)  # said once, not at every look
    out = publisher(url)
    out.send([(raw, None) for raw in packer(["late"])])
    assert "1 events published" in out.close()
    consume.wait_out(lambda line: "name=late" in line, timeout=30)
    err = consume.stop()
    assert consume.returncode == 0 and err.count("waiting for a stream") == 1, err


def stream_config(server: NatsServer, name: str):
    """The stream's configuration, None while there is none."""
    async def info():
        import nats
        from nats.js.errors import NotFoundError

        nc = await nats.connect(f"nats://127.0.0.1:{server.port}")
        try:
            return (await nc.jetstream().stream_info(name)).config
        except NotFoundError:
            return None
        finally:
            await nc.close()

    return run(info())


def test_create_stream_makes_it_with_the_limits_given(server, packer):
    url = server.url("fleet.made")
    consume = Tool(SDXFER, "consume", url, "--create-stream", "--stream", "CENTRAL", "--stream-max-age", "3600",
                   "--durable", "central")
    config = wait_until(lambda: stream_config(server, "CENTRAL"), timeout=30, every=0.2)
    assert config.subjects == ["fleet.made.>"] and config.max_age == 3600
    out = publisher(url)  # the sensor finds it
    out.send([(raw, None) for raw in packer(["kept"])])
    assert "1 events published" in out.close()
    consume.wait_out(lambda line: "name=kept" in line, timeout=30)
    assert "waiting" not in consume.stop()


# ---- 11: hostile JSON-wire messages ----------------------------------------------------------------

HOSTILE = [
    b'{"host":"x"}',
    b'{"host":{"hostname":5}}',
    b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"x":NaN}',
    json_event(x=float("inf")),  # json.dumps writes Infinity
    json_event(x=1).replace(b'"x": 1', b'"x": 1e999'),
    json_event(deep=json.loads("[" * 40 + "]" * 40)),
]


def test_hostile_json_messages_are_counted_and_named_and_output_stays_valid(server):
    url = server.url("fleet.hostile")
    subject = f"fleet.hostile.{HOST.machine_id}"
    from sdxfer.fleet import Consumer

    Consumer(url, create_stream=StreamLimits()).close()
    escaped = json_event(**{"\x1b]0;owned\x07key": "\x1b[31mred", "nested": {"\x1b[2J": ["\u202e"]}})
    assert not any(publish(server, [(subject, data) for data in [*HOSTILE, escaped, json_event(ok=1)]]))
    for mode in ([], ["--json"]):
        consume = Tool(SDXFER, "consume", url, "--durable", f"d{len(mode)}", *mode)
        consume.wait_out(lambda line: "ok=1" in line or '"ok": 1' in line, timeout=30)
        err = consume.stop()
        assert consume.returncode == 0 and "Traceback" not in err, err
        assert f"2 events from {len(HOSTILE) + 2} messages, 0 undecodable, {len(HOSTILE)} bad messages" in err
        assert len(re.findall(r"bad message: ", err)) == 1 + 1  # the first, then the summary's count
        assert f"bad message: {len(HOSTILE)} in all" in err
        assert not any(TERMINAL_UNSAFE.search(line[:-1]) for line in consume.out + consume.err)
        assert not any("\u202e" in line for line in consume.out + consume.err)
        if mode:
            records = [json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} printed"))
                       for line in consume.out]
            assert records[0]["\x1b]0;owned\x07key"] == "\x1b[31mred" and records[1]["ok"] == 1
        else:
            assert consume.out[0].startswith("web-1 note \\x1b]0;owned\\x07key=\\x1b[31mred")
        # acked: a restart of the durable consumer gets none of them again
        again = Tool(SDXFER, "consume", url, "--durable", f"d{len(mode)}", *mode)
        time.sleep(3)
        assert "0 events from 0 messages" in again.stop()


# ---- 1 (the consumer's half): an event split across messages --------------------------------------

def test_an_event_split_across_messages_is_joined(generated):
    """A sender that cannot fit an event's records in one message sends them in
    several: the consumer joins them per sender run, whatever lies between."""
    if generated.schema.name != "events.yaml":
        pytest.skip("the shipped schema's spanning exec")
    from test_driver import _strlist, call

    argv = ["q" * 1000] * 40
    records = generated.pack([call(generated, "exec", argv=_strlist(argv), exe=b"/bin/q")])
    assert len(records) >= 3
    messages, lines = decoder_for()
    sender = envelope.Sender.start(HOST, messages.decoder.schema_digest, MAJOR)
    other = envelope.Sender.start(HOST, messages.decoder.schema_digest, MAJOR)  # another run of that host
    subject = f"fleet.unit.{HOST.machine_id}"
    got = list(messages.items(subject, envelope.pack(sender, 1, records[:1])))
    assert got == []  # waits for the rest
    got += messages.items(subject, envelope.pack(other, 1, records[1:2]))  # not its run: not joined
    got += messages.items(subject, envelope.pack(sender, 2, records[1:]))
    [whole] = [item for item in got if item.event.name == "exec"]
    assert whole.event.argv == ["q" * 1000] * 40 and whole.event.truncated == ()
    assert [item.event.name for item in messages.flush()] == []


def test_events_still_waiting_at_the_end_come_as_far_as_they_came(generated):
    if generated.schema.name != "events.yaml":
        pytest.skip("the shipped schema's spanning exec")
    from test_driver import _strlist, call

    records = generated.pack([call(generated, "exec", argv=_strlist(["r" * 1000] * 40), exe=b"/bin/r")])
    messages, _ = decoder_for()
    sender = envelope.Sender.start(HOST, messages.decoder.schema_digest, MAJOR)
    assert list(messages.items(f"fleet.unit.{HOST.machine_id}", envelope.pack(sender, 1, records[:1]))) == []
    [partial] = list(messages.flush())
    assert partial.event.name == "exec" and "argv" in partial.event.truncated


def test_runs_waiting_for_their_next_message_hold_a_bounded_number_of_bytes(generated):
    """A sender picks its run ids: runs each left waiting with an event's
    first record are flushed, the least recent first, once what all of them
    hold passes the consumer's bound, not only past 1024 runs."""
    if generated.schema.name != "events.yaml":
        pytest.skip("the shipped schema's spanning exec")
    from sdxfer.fleet.consume import MessageDecoder
    from test_driver import _strlist, call
    import sdxfer

    records = generated.pack([call(generated, "exec", argv=_strlist(["s" * 1000] * 40), exe=b"/bin/s")])
    messages = MessageDecoder("fleet.unit", sdxfer.default_decoder(), MAJOR, lambda line: None,
                              max_pending_bytes=200_000, max_pending_parts=1000)
    subject = f"fleet.unit.{HOST.machine_id}"
    flushed = []
    for _ in range(100):
        sender = envelope.Sender.start(HOST, messages.decoder.schema_digest, MAJOR)  # a run id of its own
        flushed += messages.items(subject, envelope.pack(sender, 1, records[:1]))
        assert messages.pending_bytes <= 200_000 and messages.pending_parts <= 1000
    assert 0 < len(messages._reassemblers) < 20
    assert len(flushed) == 100 - len(messages._reassemblers)
    assert all(item.event.name == "exec" and "argv" in item.event.truncated for item in flushed)
    assert len(list(messages.flush())) + len(flushed) == 100 and messages.pending_bytes == messages.pending_parts == 0
    # by parts too: runs that each hold one event of few bytes
    messages = MessageDecoder("fleet.unit", sdxfer.default_decoder(), MAJOR, lambda line: None, max_pending_parts=10)
    for _ in range(30):
        sender = envelope.Sender.start(HOST, messages.decoder.schema_digest, MAJOR)
        list(messages.items(subject, envelope.pack(sender, 1, records[:1])))
        assert messages.pending_parts <= 10


def test_the_consumer_never_prints_the_credentials_in_its_url():
    done = subprocess.run([SDXFER, "consume", "nats://someone:hunter2@127.0.0.1:9/fleet.x"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "127.0.0.1" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout and "someone" not in done.stderr + done.stdout
