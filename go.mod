// The Go side of sdxfer: the generated package (generated/go/events), its
// tests (tests/go), the Go execmon (examples/go-execmon) and its bench
// (bench/go). Built offline with Debian's Go packages (scripts/setup.sh):
// GOFLAGS=-mod=mod GOPROXY=off.
module sdxfer

go 1.19

require github.com/cilium/ebpf v0.9.1

require golang.org/x/sys v0.0.0-20210906170528-6f6e22806c34

// golang-github-cilium-ebpf-dev and golang-golang-x-sys-dev
replace github.com/cilium/ebpf => /usr/share/gocode/src/github.com/cilium/ebpf

replace golang.org/x/sys => /usr/share/gocode/src/golang.org/x/sys
