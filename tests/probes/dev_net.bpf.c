/* The network family alone, against tests/schemas/dev_net.yaml. */
#include "xfer.h"
#define HIDS_WANT_CONNECT 1
#define HIDS_WANT_BIND 1
#define HIDS_WANT_LISTEN 1
#define HIDS_WANT_ACCEPT 1
#define HIDS_WANT_DNS 1
#include "net.bpf.h"
