/*
 * sdxfer's HIDS probe: every event of schema/events.yaml, one header per
 * event family. Load it with sdxfer.Sensor, which inlines the generated
 * xfer.h and these headers and resolves every BTF_OFF_ name they use from
 * the running kernel's BTF. With -DHIDS_SELECTED only the events named by
 * -DHIDS_WANT_<EVENT> are compiled (hidsmon --events, execmon); with
 * -DHIDS_WITHOUT_FAILED_EXECS, failed execs are not reported (exec.bpf.h).
 */
#include <linux/sched.h>
#include "xfer.h"
#include "exec.bpf.h"
#include "process.bpf.h"
#include "net.bpf.h"
#include "file.bpf.h"
