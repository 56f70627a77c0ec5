// Command decode is the tests' window on the generated Go package: it reads
// records framed as (u32 little-endian length, bytes) from stdin and writes
// one line per record: the event's JSON, or "error" when it does not decode.
// With -reassemble the records go through a Reassembler instead: one line
// per event delivered (or per error), then the events Flush gives; its
// limits are NewReassembler's unless -max-pending-bytes, -max-age-ns or
// -max-pending-parts say.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"io"
	"log"
	"os"

	"sdxfer/generated/go/events"
)

func main() {
	reassemble := flag.Bool("reassemble", false, "join continuation records")
	r := events.NewReassembler()
	flag.IntVar(&r.MaxPendingBytes, "max-pending-bytes", r.MaxPendingBytes, "the Reassembler's limit")
	flag.Int64Var(&r.MaxAgeNs, "max-age-ns", r.MaxAgeNs, "the Reassembler's limit")
	flag.IntVar(&r.MaxPendingParts, "max-pending-parts", r.MaxPendingParts, "the Reassembler's limit")
	flag.Parse()
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for {
		var size uint32
		if err := binary.Read(in, binary.LittleEndian, &size); err == io.EOF {
			break
		} else if err != nil {
			log.Fatal(err)
		}
		record := make([]byte, size)
		if _, err := io.ReadFull(in, record); err != nil {
			log.Fatal(err)
		}
		var delivered []events.Event
		var err error
		if *reassemble {
			delivered, err = r.Feed(record)
		} else {
			var event events.Event
			event, err = events.Decode(record)
			delivered = []events.Event{event}
		}
		if err != nil {
			out.WriteString("error\n")
			continue
		}
		write(out, delivered)
	}
	write(out, r.Flush())
}

func write(out *bufio.Writer, delivered []events.Event) {
	for _, event := range delivered {
		line, _ := event.MarshalJSON()
		out.Write(append(line, '\n'))
	}
}
