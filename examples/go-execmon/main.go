// Command go-execmon prints every exec on this host, as sdxfer's execmon
// does: the exec programs of sdxfer's prebuilt CO-RE object loaded with
// cilium/ebpf, records read from the perf buffer (or the ring buffer with
// -transport ringbuf), decoded by the Go package sdxfer gen --go makes from
// the schema. Columns PID EXEC ARGS, or with -json one object per exec with
// execmon --json's keys and values. Needs root.
//
//	go run ./examples/go-execmon [-transport perf|ringbuf] [-json] [-objects DIR] [-btf FILE]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/cilium/ebpf/perf"
	"golang.org/x/sys/unix"

	"sdxfer/generated/go/events"
)

func main() {
	transport := flag.String("transport", "perf", "perf (one buffer per CPU) or ringbuf (the BPF ring buffer)")
	asJSON := flag.Bool("json", false, "one JSON object per exec, with execmon --json's keys")
	objects := flag.String("objects", "sdxfer/objects", "the folder of sdxfer's prebuilt objects and their manifest")
	btfFile := flag.String("btf", "", "relocate against this BTF file instead of the kernel's")
	flag.Parse()
	if err := run(*transport, *asJSON, *objects, *btfFile); err != nil {
		fmt.Fprintf(os.Stderr, "go-execmon: %v\n", err)
		os.Exit(1)
	}
}

func run(transport string, asJSON bool, objects, btfFile string) error {
	if transport != "perf" && transport != "ringbuf" {
		return fmt.Errorf("no transport %q: choose perf or ringbuf", transport)
	}
	p, err := load(objects, transport, btfFile)
	if err != nil {
		return err
	}
	defer p.close()
	records, err := open(p, transport)
	if err != nil {
		return err
	}
	defer records.close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); records.interrupt() }()

	fmt.Fprintf(os.Stderr, "go-execmon: %d programs attached (%s); Ctrl+C to stop\n", p.attached, transport)
	out := bufio.NewWriter(os.Stdout)
	if !asJSON {
		fmt.Fprintf(out, "Watching execve events... Ctrl+C to stop\n%-8s %-20s ARGS\n", "PID", "EXEC")
		out.Flush()
	}
	show := printer(out, asJSON, wallMinusMono())
	reassembler := events.NewReassembler()
	received, lost, undecodable := 0, uint64(0), 0
	for ctx.Err() == nil {
		batch, lostNow, err := records.read()
		if err != nil {
			break
		}
		lost += lostNow
		for _, record := range batch {
			delivered, err := reassembler.Feed(record)
			if err != nil {
				undecodable++
			}
			received += show(delivered)
		}
		// an exec whose continuation records never all come is shown as far as it came
		received += show(reassembler.Expire(monotonicNs()))
		out.Flush()
	}
	received += show(reassembler.Flush())
	out.Flush()
	fmt.Fprintf(os.Stderr, "go-execmon: %d events received, %d records lost, %d undecodable\n", received, lost, undecodable)
	return nil
}

// source is where records come from: read gives the next ones and how many
// were lost, interrupt ends a read waiting (from another goroutine), close
// releases the buffer once reads are over.
type source struct {
	read      func() ([][]byte, uint64, error)
	interrupt func()
	close     func()
}

func open(p *probe, transport string) (*source, error) {
	m := p.collection.Maps[events.EventsMap]
	if transport == "ringbuf" {
		ring, err := newRingReader(m)
		if err != nil {
			return nil, err
		}
		// a read waits pollMs at most: the loop sees the signal itself
		return &source{func() ([][]byte, uint64, error) { return ring.read(), 0, nil }, func() {}, ring.close}, nil
	}
	rd, err := perf.NewReader(m, bufferPages()*os.Getpagesize())
	if err != nil {
		return nil, err
	}
	read := func() ([][]byte, uint64, error) {
		record, err := rd.Read()
		if err != nil {
			return nil, 0, err
		}
		if record.LostSamples > 0 {
			fmt.Fprintf(os.Stderr, "go-execmon: %d records lost on CPU %d: the perf buffer was full\n", record.LostSamples, record.CPU)
		}
		return [][]byte{record.RawSample}, record.LostSamples, nil
	}
	return &source{read, func() { rd.Close() }, func() { rd.Close() }}, nil
}

// printer writes the exec events of a batch (successful execs: execmon without -x) and counts them.
func printer(out *bufio.Writer, asJSON bool, wallMinusMono int64) func([]events.Event) int {
	return func(batch []events.Event) int {
		shown := 0
		for _, event := range batch {
			e, ok := event.(*events.Exec)
			if !ok || e.Ret != 0 {
				continue
			}
			if asJSON {
				out.Write(jsonLine(e, wallMinusMono))
			} else {
				out.WriteString(textLine(e))
			}
			out.WriteByte('\n')
			shown++
		}
		return shown
	}
}

// jsonLine is execmon's JSON object: the event's, `time` (UTC, microseconds),
// then `ts_ns` and `argv_truncated`.
func jsonLine(e *events.Exec, wallMinusMono int64) []byte {
	line, _ := e.MarshalJSON()
	wall := time.Unix(0, int64(e.TimestampNs)+wallMinusMono).UTC().Format("2006-01-02T15:04:05.000000Z")
	argvTruncated := false
	for _, name := range e.Truncated() {
		argvTruncated = argvTruncated || name == "argv"
	}
	line = append(line[:len(line)-1], fmt.Sprintf(`, "time": "%s", "ts_ns": %d, "argv_truncated": %t}`,
		wall, e.TimestampNs, argvTruncated)...)
	return line
}

// textLine: PID (8 wide), EXEC (20 wide), then the arguments, " ..." where the kernel cut them.
func textLine(e *events.Exec) string {
	comm := ""
	if e.Comm != nil {
		comm = escape(e.Comm.Bytes())
	}
	args := make([]string, len(e.Argv))
	for i, arg := range e.Argv {
		args[i] = escape(arg.Bytes())
	}
	line := fmt.Sprintf("%-8d %-20s %s", e.PID, comm, strings.Join(args, " "))
	for _, name := range e.Truncated() {
		if name == "argv" {
			line += " ..."
		}
	}
	return line
}

// escape makes text safe for a terminal as execmon does: control characters,
// C1, the bidirectional controls and bytes that are not UTF-8 become visible escapes.
func escape(b []byte) string {
	var s strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&s, `\x%02x`, b[0])
		case r == '\n':
			s.WriteString(`\n`)
		case r == '\t':
			s.WriteString(`\t`)
		case r == '\r':
			s.WriteString(`\r`)
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			fmt.Fprintf(&s, `\x%02x`, r)
		case r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			fmt.Fprintf(&s, `\u%04x`, r)
		default:
			s.Write(b[:size])
		}
		b = b[size:]
	}
	return s.String()
}

// monotonicNs is CLOCK_MONOTONIC, the kernel timestamps' clock.
func monotonicNs() int64 {
	var mono unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		panic(err) // never on Linux
	}
	return mono.Nano()
}

// wallMinusMono turns kernel timestamps into wall-clock time.
func wallMinusMono() int64 { return time.Now().UnixNano() - monotonicNs() }
