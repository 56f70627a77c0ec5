package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"sdxfer/generated/go/events"
)

// manifest is what sdxfer/objects/hids.manifest.json says (sdxfer/kernel/objects.py writes it).
type manifest struct {
	SchemaDigest string              `json:"schema_digest"` // sha256 of the schema the objects' records follow
	Objects      map[string]string   `json:"objects"`       // transport -> object file
	Events       map[string][]string `json:"events"`        // event -> the programs that send it
	FailedExecs  []string            `json:"failed_execs"`  // exec programs that only report failed execs
	Runtime      []string            `json:"runtime"`       // the continuation program (tail-called), the exe_path keeper's
}

// probe is execmon's programs loaded and attached.
type probe struct {
	collection *ebpf.Collection
	links      []io.Closer
	attached   int // the exec programs attached: links but the runtime's exe_path keeper (execmon counts so)
}

// programs names the programs execmon loads: the exec ones (failed execs left
// out, as execmon without -x leaves them) and the runtime's.
func (m *manifest) programs() map[string]bool {
	wanted := map[string]bool{}
	for _, names := range [][]string{m.Events["exec"], m.Runtime} {
		for _, name := range names {
			wanted[name] = true
		}
	}
	for _, name := range m.FailedExecs {
		delete(wanted, name)
	}
	return wanted
}

func readManifest(folder string) (*manifest, error) {
	data, err := os.ReadFile(filepath.Join(folder, "hids.manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("%v (build the objects: python -m sdxfer.kernel.objects, or scripts/setup.sh)", err)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", folder, err)
	}
	// records of another schema would decode into wrong fields, not fail
	if m.SchemaDigest != events.SchemaDigest {
		return nil, fmt.Errorf("the objects in %s were built from schema %q, this program's decoders from %q:"+
			" generate both from one schema (sdxfer gen, python -m sdxfer.kernel.objects) and build again",
			folder, m.SchemaDigest, events.SchemaDigest)
	}
	return &m, nil
}

// kernelTypes is the BTF CO-RE relocations are resolved against: btfFile if
// given; else the kernel's, or where this cilium/ebpf cannot read it (0.9.1
// knows no BTF_KIND_ENUM64, kernels 6.0+ have it), the few types the object
// uses, cut from it by bpftool gen min_core_btf.
func kernelTypes(btfFile, object string) (*btf.Spec, error) {
	if btfFile != "" {
		return btf.LoadSpec(btfFile)
	}
	spec, err := btf.LoadKernelSpec()
	if err == nil {
		return spec, nil
	}
	folder, err := os.MkdirTemp("", "go-execmon-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(folder)
	minimal := filepath.Join(folder, "min.btf")
	out, err := exec.Command("bpftool", "gen", "min_core_btf", "/sys/kernel/btf/vmlinux", minimal, object).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("cannot read the kernel's BTF, and bpftool gen min_core_btf failed: %v %s",
			err, strings.TrimSpace(string(out)))
	}
	return btf.LoadSpec(minimal)
}

// load loads execmon's programs of the object for `transport`, as sdxfer's
// libbpf loader does: this process left out by the read-only filter global,
// the ring buffer sized, the continuation program in its program array.
func load(folder, transport, btfFile string) (*probe, error) {
	m, err := readManifest(folder)
	if err != nil {
		return nil, err
	}
	if m.Objects[transport] == "" {
		return nil, fmt.Errorf("no %s object in %s", transport, folder)
	}
	object := filepath.Join(folder, m.Objects[transport])
	spec, err := ebpf.LoadCollectionSpec(object)
	if err != nil {
		return nil, err
	}
	wanted := m.programs()
	for name, program := range spec.Programs {
		if !wanted[name] {
			delete(spec.Programs, name)
		} else if program.Type == ebpf.UnspecifiedProgram && program.SectionName == "raw_tp" {
			program.Type = ebpf.RawTracepoint // a bare SEC("raw_tp"), which cilium/ebpf 0.9.1 does not type
		}
	}
	if err := spec.RewriteConstants(map[string]interface{}{events.FilterGlobals["not_tgid"]: uint64(os.Getpid())}); err != nil {
		return nil, err
	}
	if spec.Maps[events.EventsMap].Type == ebpf.RingBuf {
		spec.Maps[events.EventsMap].MaxEntries = uint32(bufferPages() * os.Getpagesize())
	}
	types, err := kernelTypes(btfFile, object)
	if err != nil {
		return nil, err
	}
	collection, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: types, LogSize: 1 << 24}})
	if err != nil {
		return nil, err
	}
	p := &probe{collection: collection}
	if err := p.attach(spec); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *probe) attach(spec *ebpf.CollectionSpec) error {
	if rest := p.collection.Programs[events.RestProgram]; rest != nil {
		if err := p.collection.Maps[events.RestProgramsMap].Put(uint32(0), rest); err != nil {
			return err
		}
	}
	// The exe_path keeper last: a tracepoint runs its programs in the order
	// they were attached, and an exit event at its tracepoint reads the path
	// the keeper forgets.
	names := make([]string, 0, len(p.collection.Programs))
	for name := range p.collection.Programs {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		return names[i] != events.ExeForgetProgram && (names[j] == events.ExeForgetProgram || names[i] < names[j])
	})
	for _, name := range names {
		program := p.collection.Programs[name]
		var l io.Closer
		var err error
		switch attachTo := spec.Programs[name].AttachTo; {
		case name == events.RestProgram: // tail-called, attached nowhere
			continue
		case program.Type() == ebpf.RawTracepoint:
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: attachTo, Program: program})
		case program.Type() == ebpf.TracePoint:
			l, err = attachTracepoint(attachTo, program)
		default:
			err = fmt.Errorf("program %s: cannot attach a %s program", name, program.Type())
		}
		if err != nil {
			return fmt.Errorf("program %s: %v", name, err)
		}
		p.links = append(p.links, l)
		if name != events.ExeForgetProgram {
			p.attached++
		}
	}
	return nil
}

// perfEvent is a tracepoint's perf event with a program on it; closing it detaches the program.
type perfEvent int

func (fd perfEvent) Close() error { return unix.Close(int(fd)) }

// attachTracepoint runs program at the tracepoint "group/event", as libbpf
// does: a perf event of the tracepoint, on CPU 0 (the program runs on every
// CPU), with the program set on it. cilium/ebpf 0.9.1's link.Tracepoint looks
// for tracefs only at /sys/kernel/debug/tracing, which this kernel's hosts
// need not mount.
func attachTracepoint(attachTo string, program *ebpf.Program) (io.Closer, error) {
	var id uint64
	var err error
	for _, tracefs := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		var data []byte
		if data, err = os.ReadFile(filepath.Join(tracefs, "events", attachTo, "id")); err == nil {
			id, err = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tracepoint %s: %v", attachTo, err)
	}
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: id, Sample_type: unix.PERF_SAMPLE_RAW,
		Sample: 1, Wakeup: 1}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, -1, 0, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("tracepoint %s: perf_event_open: %v", attachTo, err)
	}
	for _, request := range []struct {
		op    uint
		value int
	}{{unix.PERF_EVENT_IOC_SET_BPF, program.FD()}, {unix.PERF_EVENT_IOC_ENABLE, 0}} {
		if err := unix.IoctlSetInt(fd, request.op, request.value); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("tracepoint %s: %v", attachTo, err)
		}
	}
	return perfEvent(fd), nil
}

func (p *probe) close() {
	for _, l := range p.links {
		l.Close()
	}
	p.collection.Close()
}

// bufferPages: the shipped schema's exec argv spans records (a whole argv is sent at once).
func bufferPages() int {
	if events.Spans {
		return events.SpanningBufferPages
	}
	return events.RingbufPages
}
