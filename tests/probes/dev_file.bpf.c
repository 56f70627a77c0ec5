/* The file family alone, against tests/schemas/dev_file.yaml (until the
 * lead folds it into the shipped schema and bpf/hids.bpf.c). */
#include "xfer.h"
#define HIDS_WANT_MOUNT 1
#define HIDS_WANT_CHMOD 1
#define HIDS_WANT_RENAME 1
#define HIDS_WANT_UNLINK 1
#define HIDS_WANT_FILE_CREATE 1
#include "file.bpf.h"
