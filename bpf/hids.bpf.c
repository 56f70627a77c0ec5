/*
 * sdxfer's HIDS probe: every event of schema/events.yaml, one header per
 * event family. Load it with sdxfer.Sensor (BCC), which inlines the
 * generated xfer.h and these headers and resolves every SDXFER_MEMBER they
 * use from the running kernel's BTF, or build a CO-RE object with
 * `sdxfer build bpf/hids.bpf.c -o hids.bpf.o`. With -DHIDS_SELECTED only
 * the events named by -DHIDS_WANT_<EVENT> are compiled (hidsmon --events, execmon); with
 * -DHIDS_WITHOUT_FAILED_EXECS, failed execs are not reported (exec.bpf.h).
 */
#ifndef SDXFER_CORE  /* vmlinux.h has the kernel's types under CO-RE; its headers would clash */
#include <linux/sched.h>
#endif
#include "xfer.h"
#include "exec.bpf.h"
#include "process.bpf.h"
#include "net.bpf.h"
#include "file.bpf.h"
