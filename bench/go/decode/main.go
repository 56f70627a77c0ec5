// Command decode times the generated Go package's Decode on one record, for
// bench/go_decode.py: for each round, the wall-clock and CPU nanoseconds of
// decoding the record COUNT times, one line each.
//
//	decode RECORD_FILE COUNT ROUNDS
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"sdxfer/generated/go/events"
)

func cpuNs() int64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		panic(err)
	}
	return usage.Utime.Nano() + usage.Stime.Nano()
}

func main() {
	record, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	count, _ := strconv.Atoi(os.Args[2])
	rounds, _ := strconv.Atoi(os.Args[3])
	if _, err := events.Decode(record); err != nil {
		panic(err)
	}
	for r := 0; r < rounds; r++ {
		wall, cpu := time.Now(), cpuNs()
		for i := 0; i < count; i++ {
			events.Decode(record)
		}
		fmt.Println(time.Since(wall).Nanoseconds(), cpuNs()-cpu)
	}
}
