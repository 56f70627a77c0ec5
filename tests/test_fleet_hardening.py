"""The sensor side of issue 16: what a full disk, a corrupt spool, a small
max_payload, a server that goes away, a hostile stream reader or another
local user do to --output, without a kernel (the sensor's own events: see
test_fleet_live.py)."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import time

import pytest

import sdxfer
from sdxfer.fleet import envelope
from sdxfer.fleet.backlog import Backlog
from sdxfer.fleet.files import RotatingFile, records_in
from sdxfer.fleet.nats_io import Endpoint, FleetError, StreamLimits, ensure_stream, redacted
from sdxfer.fleet.output import FileOutput, NatsOutput, RawOutput, add_output_arguments

from conftest import wait_until
from nats_support import NatsServer
from test_fleet import HOST, ROOT, fake_record, packer, publisher  # noqa: F401 (packer: a fixture)


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
    notes = []
    wait_until(lambda: notes.extend(out.notices()) or any("max_payload" in note for note in notes),
               what="a line about the oversized message")
    summary = out.close()
    notes = [note for note in notes if "max_payload" in note]  # a slow start may say the server was away too
    assert "above the server's max_payload (8192 bytes): dropped (all such" in notes[0] and len(notes) == 1, notes
    assert "1 events published" in summary and "1 dropped (above the server's max_payload" in summary, summary
    (message,) = stream_messages(small_server, "FLEET_LATE")
    assert envelope.unpack(message[1]).records == [fake_record(b"after")]


def test_a_server_back_with_a_smaller_max_payload_gets_messages_that_fit(tmp_path):
    """The limit is the server's at every connection: one that comes back
    (same port, same store) allowing 8 KiB, where it allowed 1 MiB, is sent
    messages of at most 8 KiB from then on, none dropped."""
    nats = NatsServer(tmp_path / "store")
    nats.start()
    try:
        out = publisher(nats.url("fleet.shrunk"))
        first = fake_record(b"first")
        out.send([(first, None)])
        wait_until(lambda: out.nats.stats.published_messages == 1, what="a message to the first server")
        assert out.nats.max_payload > 8192
        nats.kill()
        conf = tmp_path / "small.conf"
        conf.write_text("max_payload: 8192\n")
        nats.options = ("-c", str(conf))
        nats.start()
        wait_until(lambda: out.nats.max_payload == 8192, what="the max_payload of the server back")
        records = [fake_record(b"r%02d" % n + b"x" * 2000) for n in range(20)]
        out.send([(raw, None) for raw in records])
        summary = out.close()
        messages = [data for _, data in stream_messages(nats, "FLEET_SHRUNK")]
        assert len(messages) > 2 and all(len(data) <= 8192 for data in messages), [len(m) for m in messages]
        assert [record for data in messages for record in envelope.unpack(data).records] == [first] + records
        assert "21 events published" in summary and "max_payload" not in summary, summary
    finally:
        nats.kill()


def test_messages_built_for_a_larger_limit_while_the_server_was_away_do_not_stall_the_rest(tmp_path):
    """What was built while the server was away, for its old 1 MiB limit, is
    held back by us, not by nats-py (whose buffer would send it first on the
    reconnect, and the server, now at 8 KiB, would end the connection for
    good): dropped and counted, and what comes after is published."""
    nats = NatsServer(tmp_path / "store")
    nats.start()
    try:
        out = publisher(nats.url("fleet.away"))
        out.send([(fake_record(b"first"), None)])
        wait_until(lambda: out.nats.stats.published_messages == 1, what="a message to the first server")
        nats.kill()
        wait_until(lambda: out.nats.stats.disconnects == 1, what="the sender to see the server go")
        out.send([(fake_record(b"b" * 3000), None) for _ in range(10)])  # one message of 30 KB
        time.sleep(1.5)  # publish attempts while the server is away
        conf = tmp_path / "small.conf"
        conf.write_text("max_payload: 8192\n")
        nats.options = ("-c", str(conf))
        nats.start()
        wait_until(lambda: out.nats.max_payload == 8192, what="the max_payload of the server back")
        later = [fake_record(b"l%02d" % n) for n in range(5)]
        out.send([(raw, None) for raw in later])
        summary = out.close()
        records = [record for _, data in stream_messages(nats, "FLEET_AWAY") for record in envelope.unpack(data).records]
        assert records == [fake_record(b"first")] + later
        assert "6 events published" in summary and "10 dropped (above the server's max_payload of 8192" in summary, \
            summary
    finally:
        nats.kill()


# ---- item 3: a damaged spool, a failing sending thread -----------------------------------------

def test_damaged_spool_files_are_moved_aside_named_once_and_the_rest_is_sent(tmp_path):
    first = Backlog(0, tmp_path, 1 << 20)
    for number in range(5):
        assert first.put((5, number), f"m{number}", b"payload%d" % number, 1)
    files = sorted(tmp_path.glob("*.sdxb"))
    files[1].write_bytes(files[1].read_bytes()[:6])  # a head cut short
    data = bytearray(files[2].read_bytes())
    data[-1] ^= 0xFF  # the payload damaged, its length right
    files[2].write_bytes(bytes(data))
    files[3].write_bytes(files[3].read_bytes() + b"more")  # longer than its head says
    (tmp_path / "dir.sdxb").mkdir()
    (tmp_path / "00000000000000000005-000000000009.partial").write_bytes(b"SDXS half")
    second = Backlog(0, tmp_path, 1 << 20)
    got = []
    while (item := second.oldest(0)) is not None:
        got.append(item[1])
        second.done(item[0])
    assert got == [b"payload0", b"payload4"]
    assert sorted(path.name for path in (tmp_path / "bad").iterdir()) == \
        sorted([files[1].name, files[2].name, files[3].name, "dir.sdxb"])
    assert second.stats.bad_files == 4 and not list(tmp_path.glob("*.partial"))
    notes = list(second.notes)
    assert len(notes) == 4 and all("moved into" in note for note in notes), notes
    assert any("checksum" in note and files[2].name in note for note in notes)
    assert second.spool_used == 0 and len(second) == 0


def test_a_failing_sending_thread_restarts_and_says_so(server):
    out = publisher(server.url("fleet.restart_thread"))
    real, failed = out.backlog.oldest, []

    def oldest(timeout):
        if not failed:
            failed.append(True)
            raise RuntimeError("boom")
        return real(timeout)

    out.backlog.oldest = oldest
    out.send([(fake_record(b"r1"), None)])
    notes = wait_until(lambda: out.notices(), timeout=20, what="a line about the sending thread")
    assert notes == [f"{server.url('fleet.restart_thread')}: the sending thread failed (RuntimeError: boom);"
                     " restarted"]
    assert "1 events published" in out.close()


# ---- item 4: a full disk ------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs of its own, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)  # lazy: a failed test may still hold a file open


@pytest.fixture(scope="module")
def events(packer):
    decoder = sdxfer.default_decoder()
    return [(raw, decoder.decode(raw)) for raw in packer([f"e{n}" for n in range(100)])]


def test_a_full_disk_under_file_output_is_counted_drops_and_one_line(small_disk, events):
    path = small_disk / "events.ndjson"
    out = FileOutput(str(path), envelope.Sender.start(HOST, "d" * 64, 1), 1 << 20, 0, 1)
    notes, sent = [], 0
    for _ in range(100):
        out.send(events)
        sent += len(events)
        notes += out.notices()
    summary = out.close()
    data = path.read_bytes()
    lines = data.split(b"\n")
    assert data.endswith(b"\n") and all(json.loads(line)["name"].startswith("e") for line in lines[:-1])
    assert out.drops.events > 0 and out.file.lines == len(lines) - 1 and out.file.lines + out.drops.events == sent
    assert notes == [f"{path}: No space left on device: events dropped (all are counted at exit)"]
    assert summary.endswith(f", {out.drops.events} events dropped (the disk refused them)")


def test_a_full_disk_under_raw_output_keeps_whole_records(small_disk, events):
    out = RawOutput(str(small_disk / "capture.sdxr"))
    for _ in range(100):
        out.send(events)
    notes = out.notices()
    out.close()
    decoder = sdxfer.default_decoder()
    kept = records_in((small_disk / "capture.sdxr").read_bytes())
    assert [decoder.decode(bytes(raw)).name for raw in kept] == [event.name for _, event in events] * (len(kept) // 100)
    assert out.drops.events == 100 * 100 - out.file.records and len(notes) == 1


def test_a_full_disk_under_the_spool_is_counted_drops_and_one_line(small_disk):
    backlog = Backlog(0, small_disk / "spool", 1 << 30)
    kept = sum(backlog.put((1, number), f"m{number}", b"x" * 1000, 2) for number in range(200))
    assert 0 < kept < 200 and backlog.stats.dropped_events == 2 * (200 - kept)
    assert list(backlog.notes) == [f"spool {small_disk / 'spool'}: No space left on device: events dropped"
                                   " (all are counted at exit)"]
    assert not list((small_disk / "spool").glob("*.partial"))
    again = Backlog(0, small_disk / "spool", 1 << 30)
    assert again.waiting_events() == 2 * kept and again.stats.bad_files == 0


def test_the_next_run_starts_on_a_new_line(tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_bytes(b'{"a": 1}\n{"b"')  # an earlier run's torn last line
    path.chmod(0o600)
    out = RotatingFile(path, 1 << 20, 0, 1)
    out.write_lines(['{"c": 3}'])
    out.close()
    assert path.read_bytes() == b'{"a": 1}\n{"b"\n{"c": 3}\n'


# ---- item 5: files of this user's only, never through a link -----------------------------------

HIDSMON = str(ROOT / ".venv" / "bin" / "hidsmon")


def refusal(output: str, *options: str) -> str:
    """hidsmon's one line when it refuses an --output (before any probe loads)."""
    done = subprocess.run([HIDSMON, "--output", output, *options], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    return done.stderr


def test_file_outputs_refuse_links_wide_modes_and_others_files(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"precious\n")
    target.chmod(0o600)
    link = tmp_path / "events.ndjson"
    link.symlink_to(target)
    for scheme in ("file:", "raw:"):
        assert "a symbolic link (refused" in refusal(f"{scheme}{link}")
    assert "a symbolic link (refused" in refusal("nats://127.0.0.1:1/x", "--spool", str(link))
    spool_link = tmp_path / "spool"
    spool_link.symlink_to(tmp_path)
    assert "a symbolic link (refused" in refusal("nats://127.0.0.1:1/x", "--spool", str(spool_link))
    assert target.read_bytes() == b"precious\n"
    wide = tmp_path / "wide.ndjson"
    wide.write_bytes(b"")
    wide.chmod(0o644)
    assert "mode 644 lets others in (chmod 600)" in refusal(f"file:{wide}")
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs.ndjson"
        theirs.write_bytes(b"")
        theirs.chmod(0o600)
        os.chown(theirs, 65534, 65534)
        assert "owned by uid 65534" in refusal(f"file:{theirs}")
    open_spool = tmp_path / "open_spool"
    open_spool.mkdir(mode=0o755)
    open_spool.chmod(0o755)
    assert "mode 755 lets others in (chmod 700)" in refusal("nats://127.0.0.1:1/x", "--spool", str(open_spool))


def test_files_and_the_spool_are_made_private(tmp_path, events):
    out = FileOutput(str(tmp_path / "events.ndjson"), envelope.Sender.start(HOST, "d" * 64, 1), 100, 0, 2)
    out.send(events[:3])  # rotates: each file made anew
    out.close()
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
    assert modes == {"events.ndjson": 0o600, "events.ndjson.1": 0o600, "events.ndjson.2": 0o600}
    backlog = Backlog(0, tmp_path / "spool" / "deeper", 1 << 20)
    assert backlog.put((1, 1), "m1", b"x", 1)
    assert (tmp_path / "spool" / "deeper").stat().st_mode & 0o777 == 0o700
    assert [path.stat().st_mode & 0o777 for path in (tmp_path / "spool" / "deeper").iterdir()] == [0o600]


# ---- item 6: secrets ----------------------------------------------------------------------------

def test_no_secret_is_printed_and_a_token_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    nats = NatsServer(tmp_path / "store", "--user", "sensor", "--pass", "pa55word")
    nats.start()
    try:
        url = f"nats://sensor:pa55word@127.0.0.1:{nats.port}/fleet.secret"
        out = publisher(url)
        out.send([(fake_record(b"s1"), None)])
        nats.kill()
        notes = wait_until(lambda: out.notices(), timeout=20, what="a line about the server")
        summary = out.close()
    finally:
        nats.kill()
    printed = "\n".join([*notes, summary])
    assert "pa55word" not in printed and "sensor:" not in printed and f"***@127.0.0.1:{nats.port}" in printed
    assert redacted("tls://t0ken@h:1/x") == "tls://***@h:1/x" and redacted("nats://h:1/x") == "nats://h:1/x"
    with pytest.raises(FleetError) as caught:
        Endpoint.parse("nats://u:pa55word@h:99999/x")
    assert "pa55word" not in str(caught.value)
    token = tmp_path / "token"
    token.write_text("t0ken-from-file\n")
    assert output_args(["--token-file", str(token)]).token == "t0ken-from-file"
    monkeypatch.setenv("SDXFER_NATS_TOKEN", "t0ken-from-env")
    assert output_args([]).token == "t0ken-from-env"
    done = subprocess.run([HIDSMON, "--help"], capture_output=True, text=True, timeout=60)
    assert "every local user sees it in ps" in " ".join(done.stdout.split())


def output_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_output_arguments(parser)
    return parser.parse_args(argv)


# ---- item 7: a server that goes away and comes back ---------------------------------------------

def test_a_server_away_is_said_once_and_back_once_and_unacked_events_are_lost(server):
    url = server.url("fleet.away")
    out = publisher(url, flush_timeout=0.5)
    out.send([(fake_record(b"a1"), None)])
    wait_until(lambda: out.nats.stats.published_events == 1, what="the first event published")
    server.kill()
    notes = wait_until(lambda: out.notices(), timeout=20, what="a line about the server going")
    out.send([(fake_record(b"a%d" % n), None) for n in range(2, 5)])
    server.start()
    notes += wait_until(lambda: out.notices(), timeout=30, what="a line about the server coming back")
    assert notes[0] == f"{url}: the server is away; events wait in memory (and the spool, if any) until it is back"
    assert re.fullmatch(rf"{re.escape(url)}: the server is back after \d+ s; 3 events waited", notes[1]), notes
    assert len(notes) == 2
    wait_until(lambda: out.nats.stats.published_events == 4, what="the waiting events published")
    server.kill()
    wait_until(lambda: out.notices(), timeout=20, what="a line about the server going again")
    out.send([(fake_record(b"a5"), None)])
    assert out.close().endswith("1 lost (never acked in 0.5 s, and no room in a spool)")


# ---- item 8: message ids nobody can take first ----------------------------------------------------

def publish_raw(nats: NatsServer, subject: str, message_id: str) -> None:
    import nats as nats_py

    async def send():
        nc = await nats_py.connect(f"nats://127.0.0.1:{nats.port}")
        try:
            js = nc.jetstream()
            endpoint = Endpoint.parse(nats.url(subject)).for_host(HOST.machine_id)
            await ensure_stream(js, endpoint, StreamLimits())  # as a sensor makes it
            await js.publish(endpoint.publish_subject, b"", headers={"Nats-Msg-Id": message_id})  # on the host's subject
        finally:
            await nc.close()

    asyncio.run(send())


def test_message_ids_are_unguessable_and_a_taken_one_is_an_error(server, tmp_path):
    url = server.url("fleet.ids")
    sender = envelope.Sender.start(HOST, "d" * 64, 1)
    first, second = (NatsOutput(url, sender, output_args([])) for _ in range(2))
    assert first.message_id(1) != second.message_id(1)  # the same host, run id and sequence
    second.close()
    secret = first.message_id(1).split(".")[1]
    out = first
    out.send([(fake_record(b"i1"), None)])
    wait_until(lambda: out.nats.stats.published_events == 1, what="the first event published")
    (_, data), = stream_messages(server, "FLEET_IDS")
    assert secret.encode() not in data and bytes.fromhex(secret) not in data
    publish_raw(server, "fleet.ids", out.message_id(2))  # as if someone knew the next id
    out.send([(fake_record(b"i2"), None), (fake_record(b"i3"), None)])
    notes = wait_until(lambda: out.notices(), timeout=20, what="a line about the taken id")
    summary = out.close()
    assert notes == [f"{url}: error: JetStream already held message id {out.message_id(2)}, sent only once:"
                     " another publisher used it; its 2 events are lost"]
    assert "1 events published" in summary and "2 lost (another publisher had taken their message ids)" in summary


def test_a_resend_the_server_already_had_is_a_counted_duplicate(server, tmp_path):
    """A message an earlier run spooled at exit may have reached the server before its ack was lost."""
    url = server.url("fleet.dup")
    spool = tmp_path / "spool"
    earlier = Backlog(0, spool, 1 << 20)
    assert earlier.put((1, 1), "host.earlier.1", envelope.pack(envelope.Sender.start(HOST, "d" * 64, 1), 1,
                                                                [fake_record(b"d1")]), 1)
    publish_raw(server, "fleet.dup", "host.earlier.1")
    out = publisher(url, spool=str(spool))
    summary = out.close()
    assert "1 events published in 1 messages" in summary
    assert "1 messages JetStream already had (resent after a lost ack)" in summary
    assert not [note for note in out.notices() if "error" in note]


# ---- item 9: what kill -9 loses -------------------------------------------------------------------

def test_help_says_what_kill_9_loses():
    done = subprocess.run([HIDSMON, "--help"], capture_output=True, text=True, timeout=60)
    assert "kill -9, a crash or a power loss loses them, up to this much" in " ".join(done.stdout.split())
