/* The live path-walk tests' probe: sdxfer_path.h's walks of an fd and of the
 * cwd, for a flock() with the operation TEST_OP (no real caller passes it). */
#include "xfer.h"

struct paths_area {
    struct sdxfer_path_buf fd, cwd;
};

TRACEPOINT_PROBE(syscalls, sys_enter_flock)
{
    if (args->cmd != TEST_OP)
        return 0;
    const void *task = (const void *)bpf_get_current_task();
    SDXFER_LOCAL(struct paths_area, area);
    if (!area)
        return 0;
    /* both walks first, then both results (sdxfer_path_walk says why) */
    sdxfer_file_path_walk(sdxfer_task_file(task, args->fd), &area->fd);
    sdxfer_path_walk(sdxfer_task_cwd(task), &area->cwd);
    fd_path_print(args, args->fd, sdxfer_path_result(&area->fd), sdxfer_path_result(&area->cwd));
    return 0;
}

/* sdxfer_path_append_user: faccessat(dirfd, filename, TEST_OP) reports the
 * dirfd's path joined with the filename (the mode makes the call EINVAL). */
TRACEPOINT_PROBE(syscalls, sys_enter_faccessat)
{
    if (args->mode != TEST_OP)
        return 0;
    const void *task = (const void *)bpf_get_current_task();
    SDXFER_LOCAL(struct sdxfer_path_buf, buf);
    if (!buf)
        return 0;
    sdxfer_file_path_walk(sdxfer_task_file(task, args->dfd), buf);
    sdxfer_path_append_user(buf, (const char *)args->filename);
    joined_print(args, args->dfd, sdxfer_path_result(buf));
    return 0;
}
