/* The process family alone, against tests/schemas/dev_process.yaml: what
 * tests/test_hids_process_live.py loads until the lead folds the family into
 * bpf/hids.bpf.c. With -DHIDS_DEV_PARENT=<tgid>, only that process's
 * children are reported (the DEV schema has no pid field to tell the test's
 * own events from the host's). */
#include "xfer.h"
#include "helpers.h"

#ifdef HIDS_DEV_PARENT
#define PROCESS_SKIP_CURRENT() (parent_tgid((const char *)bpf_get_current_task()) != HIDS_DEV_PARENT)
#endif

#define HIDS_WANT_EXIT 1
#define HIDS_WANT_PTRACE 1
#define HIDS_WANT_MEMFD_CREATE 1
#define HIDS_WANT_PRCTL 1
#define HIDS_WANT_SETSID 1
#define HIDS_WANT_CREDS_CHANGE 1
#define HIDS_WANT_KMOD_LOAD 1
#include "process.bpf.h"
