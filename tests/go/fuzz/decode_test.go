// Package fuzz holds the Go fuzz test of the generated package: any bytes,
// as one record or fed to a Reassembler, give events or *DecodeError, never
// a panic. tests/test_go.py runs it with -fuzz for a bounded time, seeded
// with host-C records of the shipped schema (SDXFER_FUZZ_SEEDS: a file of
// records framed as u32 little-endian length, then bytes).
package fuzz

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"sdxfer/generated/go/events"
)

func seeds(f *testing.F) [][]byte {
	list := [][]byte{{}, make([]byte, 32), make([]byte, 64)}
	path := os.Getenv("SDXFER_FUZZ_SEEDS")
	if path == "" {
		return list
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	for len(data) >= 4 {
		size := int(binary.LittleEndian.Uint32(data))
		list = append(list, data[4:4+size])
		data = data[4+size:]
	}
	return list
}

func FuzzDecode(f *testing.F) {
	for _, seed := range seeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var decodeError *events.DecodeError
		event, err := events.Decode(b)
		if err != nil && !errors.As(err, &decodeError) {
			t.Fatalf("not a DecodeError: %v", err)
		}
		if err == nil {
			if _, err := event.MarshalJSON(); err != nil {
				t.Fatal(err)
			}
			_ = event.Truncated()
			_ = event.Missing()
		}
		r := events.NewReassembler()
		for i := 0; i < 2; i++ { // twice: a duplicate
			if _, err := r.Feed(b); err != nil && !errors.As(err, &decodeError) {
				t.Fatalf("not a DecodeError: %v", err)
			}
		}
		for _, event := range r.Flush() {
			if _, err := event.MarshalJSON(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
