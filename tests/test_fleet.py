"""Fleet pieces without a kernel: the envelope, the backlog, rotated files,
the options; then publishing host-packed records through a real nats-server
(tests/nats_support.py) and consuming them."""
from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import sdxfer
from sdxfer.fleet import envelope
from sdxfer.fleet.backlog import Backlog
from sdxfer.fleet.files import RotatingFile
from sdxfer.fleet.nats_io import Connection, Endpoint, FleetError
from sdxfer.cli import SHIPPED_SCHEMA
from sdxfer.fleet.output import NatsOutput, add_output_arguments, schema_major, size
from sdxfer.record import HEADER_OFFSETS, HEADER_SIZE

from nats_support import NatsServer

ROOT = Path(__file__).resolve().parent.parent
SDXFER = str(ROOT / ".venv" / "bin" / "sdxfer")
MAJOR = schema_major(SHIPPED_SCHEMA)
HOST = envelope.Host("web-1", "0123456789abcdef0123456789abcdef", "b00710ad-0000-4000-8000-000000000001")


def fake_record(body: bytes) -> bytes:
    """Bytes that are a record as far as the envelope cares: a header whose size is right."""
    raw = bytearray(HEADER_SIZE) + body
    struct.pack_into("<I", raw, HEADER_OFFSETS["size"], len(raw))
    return bytes(raw)


texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
records = st.lists(st.binary(max_size=64).map(fake_record), max_size=20)


@given(texts, texts, texts, st.text(max_size=64), st.integers(0, 2**64 - 1), st.integers(1, 65535), records,
       st.lists(st.integers(0, 16), max_size=20))
def test_envelope_round_trip(hostname, machine_id, boot_id, digest, seq, major, raws, padding):
    sender = envelope.Sender.start(envelope.Host(hostname, machine_id, boot_id), digest, major)
    padded = [raw + b"\0" * pad for raw, pad in zip(raws, padding + [0] * len(raws))]
    batch = envelope.unpack(envelope.pack(sender, seq, padded))
    assert batch.sender == sender and batch.batch_seq == seq
    assert batch.records == raws  # perf's padding is not sent


@given(records, st.data())
def test_every_cut_or_damaged_envelope_is_an_envelope_error(raws, data):
    message = envelope.pack(envelope.Sender.start(HOST, "d" * 64, 1), 7, raws)
    cut = data.draw(st.integers(0, len(message) - 1))
    with pytest.raises(envelope.EnvelopeError):
        envelope.unpack(message[:cut])
    with pytest.raises(envelope.EnvelopeError, match="magic"):
        envelope.unpack(b"XXXX" + message[4:])
    with pytest.raises(envelope.EnvelopeError, match="version 2"):
        envelope.unpack(message[:4] + struct.pack("<H", 2) + message[6:])
    with pytest.raises(envelope.EnvelopeError, match="after the envelope"):
        envelope.unpack(message + b"\0")


def test_host_identity_from_the_system_and_overridden_by_the_environment():
    host = envelope.this_host({})
    assert host.machine_id == Path("/etc/machine-id").read_text().strip()
    assert host.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert envelope.this_host({"SDXFER_HOSTNAME": "a", "SDXFER_MACHINE_ID": "b", "SDXFER_BOOT_ID": "c"}) == \
        envelope.Host("a", "b", "c")


@settings(deadline=None, max_examples=60)
@given(st.lists(st.one_of(st.tuples(st.just("put"), st.integers(1, 400), st.integers(1, 5)),
                          st.tuples(st.just("ack"))), max_size=60),
       st.integers(0, 1000), st.integers(0, 2000))
def test_backlog_bounds_order_and_exact_drops(tmp_path_factory, operations, memory, spool):
    spool_dir = tmp_path_factory.mktemp("spool")
    backlog = Backlog(memory, spool_dir, spool)
    put = acked = 0
    order = []
    for number, operation in enumerate(operations):
        if operation[0] == "put":
            _, length, events = operation
            put += events
            backlog.put((1, number), f"m{number}", bytes([number % 256]) * length, events)
        else:
            item = backlog.oldest(0)
            if item:
                message, payload = item
                assert payload == bytes([message.key[1] % 256]) * len(payload)
                order.append(message.key)
                backlog.done(message)
                acked += message.events
        assert backlog.memory_used <= memory and backlog.spool_used <= spool
        assert sum(f.stat().st_size for f in spool_dir.glob("*.sdxb")) == backlog.spool_used
    assert order == sorted(order)
    waiting = backlog.waiting_events()
    assert acked + waiting + backlog.stats.dropped_events == put
    lost = backlog.spill()
    again = Backlog(memory, spool_dir, spool)  # the next run finds what was spooled
    assert again.waiting_events() == waiting - lost


def test_spooled_messages_keep_their_ids_across_runs(tmp_path):
    first = Backlog(0, tmp_path, 10_000)
    for number in range(3):
        assert first.put((5, number), f"host.run.{number}", b"payload%d" % number, number + 1)
    assert first.spill() == 0
    (tmp_path / "stray.sdxb").write_bytes(b"not ours\n")
    second = Backlog(1000, tmp_path, 10_000)
    got = []
    while (item := second.oldest(0)) is not None:
        got.append((item[0].message_id, item[1], item[0].events))
        second.done(item[0])
    assert got == [(f"host.run.{n}", b"payload%d" % n, n + 1) for n in range(3)]
    assert (tmp_path / "bad" / "stray.sdxb").exists() and not list(tmp_path.glob("*.sdxb"))


def test_an_ack_after_spill_forgets_the_spooled_copy(tmp_path):
    backlog = Backlog(1000, tmp_path, 1000)
    backlog.put((1, 1), "a", b"x" * 10, 2)
    message, _ = backlog.oldest(0)
    assert backlog.spill() == 0 and backlog.spool_used > 0
    backlog.done(message)
    assert len(backlog) == 0 and backlog.spool_used == 0 and backlog.memory_used == 0
    assert not list(tmp_path.glob("*.sdxb"))


def test_a_full_spool_drops_and_counts(tmp_path):
    backlog = Backlog(10, tmp_path, 0)
    assert backlog.put((1, 1), "a", b"x" * 10, 3)
    assert not backlog.put((1, 2), "b", b"y", 4)
    assert backlog.stats.dropped_events == 4 and backlog.stats.dropped_messages == 1


@settings(deadline=None, max_examples=30)
@given(st.lists(st.lists(st.text(st.characters(blacklist_characters="\n", blacklist_categories=["Cs"]), max_size=30),
                         min_size=1, max_size=8), max_size=40),
       st.integers(1, 300), st.integers(0, 6))
def test_rotation_keeps_lines_whole_and_bounded_files(tmp_path_factory, batches, max_bytes, keep):
    folder = tmp_path_factory.mktemp("rot")
    out = RotatingFile(folder / "events.ndjson", max_bytes, 0, keep)
    written = []
    for lines in batches:
        out.write_lines(lines)
        written.append(lines)
    out.close()
    files = [folder / "events.ndjson"] + [folder / f"events.ndjson.{n}" for n in range(1, keep + 1)]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in files if p.exists())
    kept = [p.read_bytes() for p in reversed(files) if p.exists()]
    longest = max((len(line.encode()) + 1 for lines in batches for line in lines), default=0)
    for data in kept:
        assert data == b"" or data.endswith(b"\n")
        assert len(data) <= max(max_bytes, longest)
    lines_kept = b"".join(kept).decode().split("\n")[:-1]
    every_line = [line for lines in written for line in lines]
    assert lines_kept == every_line[len(every_line) - len(lines_kept):]  # the newest, in order
    if out.rotations <= keep:
        assert lines_kept == every_line


def test_rotation_by_age(tmp_path):
    out = RotatingFile(tmp_path / "e.ndjson", 1 << 20, 0.05, 2)
    out.write_lines(["a"])
    out.tick()
    assert out.rotations == 0
    time.sleep(0.06)
    out.tick()
    out.write_lines(["b"])
    out.close()
    assert (tmp_path / "e.ndjson.1").read_text() == "a\n" and (tmp_path / "e.ndjson").read_text() == "b\n"


def test_endpoint_and_sizes():
    endpoint = Endpoint.parse("nats://127.0.0.1:4333/sdxfer.events")
    assert (endpoint.server, endpoint.subject, endpoint.default_stream) == \
        ("nats://127.0.0.1:4333", "sdxfer.events", "SDXFER_EVENTS")
    assert Endpoint.parse("nats://u:p@h/x.>").server == "nats://u:p@h:4222"
    for bad in ("nats://127.0.0.1:4222", "http://h/x", "nats://h:99999/x", "nats://h/a..b"):
        with pytest.raises(FleetError):
            Endpoint.parse(bad)
    assert (size("512"), size("64K"), size("2M"), size("1G")) == (512, 65536, 2 << 20, 1 << 30)
    with pytest.raises(argparse.ArgumentTypeError):
        size("lots")


@pytest.mark.parametrize("argv, message", [
    (["hidsmon", "--output", "kafka://x"], "an output is nats://HOST:PORT/SUBJECT or file:PATH"),
    (["hidsmon", "--output", "file:"], "file: needs a path"),
    (["execmon", "--spool-bytes", "huge"], "not a size"),
    (["sdxfer", "run", "x.bpf.c", "--keep", "-1"], "not a non-negative number"),
])
def test_bad_options_are_one_line(argv, message):
    tool = str(ROOT / ".venv" / "bin" / argv[0])
    done = subprocess.run([tool, *argv[1:]], capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("tool", [["hidsmon"], ["execmon"], ["sdxfer", "run", "my.bpf.c"]])
def test_unusable_outputs_are_one_line_before_the_probe_loads(tmp_path, tool):
    for output, message in ((f"file:{tmp_path}/no/such/dir/e.ndjson", "No such file or directory"),
                            ("nats://127.0.0.1:1/x", None)):
        args = ["--output", output] + (["--tls-ca", str(tmp_path / "missing.pem")] if message is None else [])
        done = subprocess.run([str(ROOT / ".venv" / "bin" / tool[0]), *tool[1:], *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert (message or "TLS settings") in done.stderr


def test_consume_without_a_server_is_one_line():
    done = subprocess.run([SDXFER, "consume", "nats://127.0.0.1:1/sdxfer.none"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("sdxfer consume: cannot reach nats://127.0.0.1:1")
    assert len(done.stderr.strip().splitlines()) == 1


# ---- through a real nats-server ---------------------------------------------------------------

@pytest.fixture(scope="module")
def packer(tmp_path_factory):
    """prctl records packed by the generated header (host C), one per marker."""
    from conftest import Generated
    import hostc

    generated = Generated(SHIPPED_SCHEMA, tmp_path_factory.mktemp("fleet_gen"))
    index = [e.event.name for e in generated.layout.events].index("prctl")
    fields = {f.name: b"fleet" if f.type.variable else 7 for f in generated.layout.events[index].event.fields} | {
        "option": 15}

    def pack(markers: list[str]) -> list[bytes]:
        calls = b"".join(hostc.encode_call(generated.layout, index, fields | {"name": m.encode()}) for m in markers)
        return hostc.run(generated.harness, calls)

    return pack


def output_args(**settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_output_arguments(parser)
    args = parser.parse_args([])
    for name, value in settings.items():
        setattr(args, name, value)
    return args


def publisher(url: str, host: envelope.Host = HOST, digest: str = sdxfer.default_decoder().schema_digest,
              major: int = MAJOR, **settings) -> NatsOutput:
    sender = envelope.Sender.start(host, digest, major)
    return NatsOutput(url, sender, output_args(**settings))


def consume_all(url: str, expected: int, durable: str | None = None, quiet_s: float = 1.5, schema=None,
                connection: Connection = Connection()) -> list:
    """Every event until `expected` arrived and then nothing more for quiet_s."""
    from sdxfer.fleet import Consumer

    got = []
    with Consumer(url, durable=durable, schema=schema, connection=connection) as consumer:
        last = time.monotonic()
        deadline = time.monotonic() + 60

        def stop():
            return time.monotonic() > deadline or (len(got) >= expected and time.monotonic() - last > quiet_s)

        for item in consumer.events(stop):
            got.append(item)
            last = time.monotonic()
    return got


def markers_of(items) -> list[str]:
    return [item.event.value("name") for item in items]


def test_batches_published_and_decoded_with_the_host(server, packer):
    url = server.url("fleet.unit")
    out = publisher(url)
    raws = packer([f"m{n}" for n in range(300)])
    out.send([(raw, None) for raw in raws[:100]])
    out.send([(raw, None) for raw in raws[100:]])
    assert "300 events published in 2 messages" in out.close()
    items = consume_all(url, 300)
    assert markers_of(items) == [f"m{n}" for n in range(300)]
    assert {item.host for item in items} == {HOST}
    record = items[0].to_dict()
    assert record["host"] == HOST.to_dict() and record["event"] == "prctl" and record["name"] == "m0"
    assert record["time"].endswith("Z")


def test_json_wire_is_one_event_per_message(server, packer):
    url = server.url("fleet.json")
    out = publisher(url, wire="json")
    decoder = sdxfer.default_decoder()
    raws = packer(["j1", "j2"])
    out.send([(raw, decoder.decode(raw)) for raw in raws])
    assert "2 events published in 2 messages" in out.close()
    items = consume_all(url, 2)
    assert [item.record["name"] for item in items] == ["j1", "j2"]
    assert all(item.event is None and item.host == HOST for item in items)


def test_durable_consumer_goes_on_where_it_stopped(server, packer):
    url = server.url("fleet.durable")
    out = publisher(url)
    out.send([(raw, None) for raw in packer(["d1", "d2"])])
    out.close()
    assert markers_of(consume_all(url, 2, durable="central")) == ["d1", "d2"]
    out = publisher(url)
    out.send([(raw, None) for raw in packer(["d3"])])
    out.close()
    assert markers_of(consume_all(url, 1, durable="central")) == ["d3"]


def test_server_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(server, packer, tmp_path):
    url = server.url("fleet.restart")
    out = publisher(url, spool=str(tmp_path / "spool"), memory_bytes=4096)
    markers = [f"r{n}" for n in range(600)]
    raws = packer(markers)
    for number, raw in enumerate(raws):
        out.send([(raw, None)])
        if number == 200:
            server.kill()
        if number == 400:
            server.start()
        time.sleep(0.002)
    summary = out.close()
    assert "600 events published" in summary and "0 dropped" in summary, summary
    assert out.nats.stats.disconnects >= 1
    assert sorted(markers_of(consume_all(url, 600))) == sorted(markers)


def test_full_spool_drops_exactly_what_it_counts(tmp_path, packer):
    nats = NatsServer(tmp_path / "store")  # not started yet: the server is away
    url = nats.url("fleet.spool")
    raws = packer([f"s{n}" for n in range(200)])
    out = publisher(url, spool=str(tmp_path / "spool"), memory_bytes=len(raws[0]) * 30,
                    spool_bytes=len(raws[0]) * 50)
    for raw in raws:
        out.send([(raw, None)])
    dropped = out.backlog.stats.dropped_events
    assert 0 < dropped < 200
    (note,) = [note for note in out.notices() if "dropped" in note]  # beside it: the server is away
    assert note.startswith(f"{dropped} events dropped")
    nats.start()
    try:
        summary = out.close()
        assert f"{200 - dropped} events published" in summary and f"{dropped} dropped" in summary, summary
        got = markers_of(consume_all(url, 200 - dropped))
    finally:
        nats.kill()
    assert len(got) == len(set(got)) == 200 - dropped
    kept = set(got)
    # the oldest are kept, the newest dropped: memory and spool fill in order
    assert kept == {f"s{n}" for n in range(200 - dropped)}


def test_consumer_rides_out_a_server_restart(server, packer):
    from sdxfer.fleet import Consumer

    url = server.url("fleet.consumer_restart")
    out = publisher(url)
    out.send([(raw, None) for raw in packer(["before"])])
    out.close()
    got = []
    with Consumer(url, durable="central") as consumer:
        deadline = time.monotonic() + 60
        for item in consumer.events(lambda: len(got) == 2 or time.monotonic() > deadline):
            got.append(item)
            if len(got) == 1:  # the ack of "before" may die with the server: it comes again, and is known
                server.kill()
                server.start()
                out = publisher(url)
                out.send([(raw, None) for raw in packer(["after"])])
                out.close()
    assert markers_of(got) == ["before", "after"]


def test_consume_cli_prints_host_fields_and_says_what_it_cannot_decode(server, packer):
    url = server.url("fleet.cli")
    out = publisher(url)
    out.send([(raw, None) for raw in packer(["c1"])])
    out.close()
    other = publisher(url, host=envelope.Host("db-2", "m2", "b2"), digest="e" * 64, major=MAJOR + 1)
    other.send([(raw, None) for raw in packer(["c2"])])
    other.close()
    with subprocess.Popen([SDXFER, "consume", url, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        line = proc.stdout.readline()
        time.sleep(1.5)
        proc.send_signal(2)
        _, err = proc.communicate(timeout=30)
    record = json.loads(line)
    assert record["name"] == "c1" and record["host"]["hostname"] == "web-1"
    # problems name the host by the machine id of its subject (what the server vouches for), not its claimed name
    assert f"m2: undecodable: schema major {MAJOR + 1}, this consumer's is {MAJOR}" in err
    assert "1 events from 2 messages, 1 undecodable" in err


EVOLVING = (ROOT / "tests" / "schemas" / "fleet_note.yaml").read_text()


def test_hosts_on_older_and_newer_schema_versions_decode_through_evolution(server, tmp_path):
    """Host old runs version 1 of `note`, host new version 2 (a field appended):
    a consumer of either version decodes both."""
    from conftest import Generated
    import hostc

    old_dir, new_dir = tmp_path / "v1", tmp_path / "v2"
    old_dir.mkdir()
    (old_dir / "events.yaml").write_text(EVOLVING)
    old = Generated(old_dir / "events.yaml", tmp_path / "gen1")
    shutil.copytree(old_dir, new_dir)
    (new_dir / "events.yaml").write_text(EVOLVING + "      - {name: extra, type: u32}\n")
    new = Generated(new_dir / "events.yaml", tmp_path / "gen2")
    url = server.url("fleet.evolve")
    for name, generated, values in (("old", old, {}), ("new", new, {"extra": 99})):
        out = publisher(url, host=envelope.Host(name, f"m-{name}", "b"), digest=generated.decoder.schema_digest,
                        major=1)
        raws = hostc.run(generated.harness, hostc.encode_call(generated.layout, 0,
                                                              {"pid": 1, "text": name.encode(), **values}))
        out.send([(raw, None) for raw in raws])
        out.close()
    # the v2 consumer gives the old host's missing field as None; the v1 one flags the newer record
    newer_view = {item.host.hostname: item.event for item in consume_all(url, 2, schema=str(new_dir / "events.yaml"))}
    assert newer_view["old"].extra is None and newer_view["old"].missing == ("extra",)
    assert newer_view["new"].extra == 99 and newer_view["old"].text == "old" and newer_view["new"].text == "new"
    older_view = {item.host.hostname: item.event for item in consume_all(url, 2, schema=str(old_dir / "events.yaml"))}
    assert older_view["new"].newer and "extra" not in older_view["new"].fields
    assert older_view["new"].text == "new" and older_view["old"].text == "old" and not older_view["old"].newer


def test_tls_and_a_token(tmp_path, packer):
    from sdxfer.fleet import Consumer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    nats = NatsServer(tmp_path / "store", "--tls", "--tlscert", str(cert), "--tlskey", str(key), "--auth", "s3cret")
    nats.start()
    try:
        url = nats.url("fleet.tls", scheme="tls")
        out = publisher(url, tls_ca=str(cert), token="s3cret")
        out.send([(raw, None) for raw in packer(["t1"])])
        assert "1 events published" in out.close()
        with pytest.raises(FleetError, match="cannot reach .*Authorization Violation"):
            Consumer(url, connection=Connection(tls_ca=str(cert), token="wrong"))
        got = consume_all(url, 1, connection=Connection(tls_ca=str(cert), token="s3cret"))
    finally:
        nats.kill()
    assert markers_of(got) == ["t1"]


def test_a_spanning_event_crosses_the_fleet_whole(server, tmp_path):
    """A record and its continuations, as Sensor hands a reassembled event to
    the output (back to back), decode as that one event on the central side."""
    from conftest import Generated
    from sdxfer.reassembly import Reassembler

    schema = Path(__file__).resolve().parent / "schemas" / "spans.yaml"
    spans = Generated(schema, tmp_path)
    argv = b"".join(bytes([65 + i % 26]) * 90 + b"\0" for i in range(30))  # 2,730 bytes: past max, within total
    records = spans.pack([(0, {"n": 1, "argv": (argv, len(argv)), "data": b"d" * 10})])
    assert len(records) > 2
    reassembler = Reassembler(spans.decoder, keep_raw=True)
    events = [event for rec in records for event in reassembler.feed(rec)]
    assert len(events) == 1
    raw = reassembler.take_raw(events[0])
    assert raw == b"".join(records)  # each as long as its header says
    url = server.url("fleet.spans")
    out = publisher(url, digest=spans.decoder.schema_digest, major=schema_major(schema))
    out.send([(raw, events[0])])
    out.close()
    got = consume_all(url, 1, schema=str(schema))
    assert len(got) == 1
    assert got[0].event.argv == argv.decode().split("\0")[:-1]
    assert got[0].event.truncated == ()
