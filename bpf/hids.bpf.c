/*
 * sdxfer's sample sensor: the probe behind execmon, one file per event
 * family included below. Load it with sdxfer.Sensor (or ExecProbe), which
 * inlines the generated xfer.h and these headers and resolves every
 * BTF_OFF_ name they use from the running kernel's BTF.
 */
#include <linux/sched.h>
#include "xfer.h"
#include "exec.bpf.h"
