package main

import (
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringReader reads a BPF ring buffer as sdxfer's Python RingReader does. The
// probe wakes its reader only once every few records (sdxfer_send.h), so the
// reader also looks every pollMs; cilium/ebpf 0.9.1's ringbuf.Reader only
// waits for wake-ups, and would hold a lone exec back.
type ringReader struct {
	consumer []byte // the consumer position's page: ours to write
	data     []byte // the producer position's page, then the data mapped twice in a row
	mask     uint64
	epoll    int
	page     int
}

const (
	ringBusy    = 1 << 31 // the record is not committed yet
	ringDiscard = 1 << 30
	ringHeader  = 8 // u32 length and flags, u32 page offset
	pollMs      = 50
)

func newRingReader(m *ebpf.Map) (*ringReader, error) {
	page, size := os.Getpagesize(), int(m.MaxEntries())
	consumer, err := unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	data, err := unix.Mmap(m.FD(), int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Munmap(consumer)
		return nil, err
	}
	epoll, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err == nil {
		err = unix.EpollCtl(epoll, unix.EPOLL_CTL_ADD, m.FD(), &unix.EpollEvent{Events: unix.EPOLLIN})
	}
	if err != nil {
		unix.Munmap(consumer)
		unix.Munmap(data)
		return nil, err
	}
	return &ringReader{consumer, data, uint64(size - 1), epoll, page}, nil
}

func position(b []byte) *uint64 { return (*uint64)(unsafe.Pointer(&b[0])) }

// read returns the records committed so far, waiting up to pollMs when there are none.
func (r *ringReader) read() [][]byte {
	records := r.take()
	if len(records) == 0 {
		unix.EpollWait(r.epoll, make([]unix.EpollEvent, 1), pollMs)
		records = r.take()
	}
	return records
}

func (r *ringReader) take() [][]byte {
	var records [][]byte
	consumer, producer := atomic.LoadUint64(position(r.consumer)), atomic.LoadUint64(position(r.data))
	for consumer < producer {
		at := r.page + int(consumer&r.mask)
		length := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[at])))
		if length&ringBusy != 0 {
			break // it and everything after it wait
		}
		if length&ringDiscard == 0 {
			records = append(records, append([]byte{}, r.data[at+ringHeader:at+ringHeader+int(length)]...))
		}
		length &^= ringDiscard
		consumer += (uint64(length) + ringHeader + 7) &^ 7
	}
	atomic.StoreUint64(position(r.consumer), consumer) // the space goes back to the kernel
	return records
}

func (r *ringReader) close() {
	unix.Close(r.epoll)
	unix.Munmap(r.consumer)
	unix.Munmap(r.data)
}
