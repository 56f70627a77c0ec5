/*
 * Finding SSH_CONNECTION= and LD_PRELOAD= in an environment: the envp array
 * of a new image (in order inside env_start..env_end), or a caller's own.
 *
 * Each entry is a HIDS_LOOP step. Where the verifier walks the loop entry by
 * entry (the BCC build), every branch it cannot decide leaves a state
 * pending per entry, so the common case takes one branch, an asm goto into
 * the rare case (clang would lay out an if () the other way round, and the
 * verifier walks the fall-through first).
 */
#ifndef SDXFER_BPF_ENVIRON_H
#define SDXFER_BPF_ENVIRON_H

#include "exec_image.h"

#define ENV_WINDOW 8192         /* environment bytes compared in BPF memory at a time */
#define ENVP_CHUNK 256          /* envp entries read at a time; a power of two */
#define ENVP_SCAN_MAX 2048      /* environment entries of a new image examined */
#define CALLER_ENVP_MAX 1024    /* environment entries of a caller examined */

/* First bytes of "SSH_CONNECTION=" and "LD_PRELOAD=" as little-endian words. */
#define SSH_CONNECTION_W0 0x4e4e4f435f485353ULL   /* "SSH_CONN" */
#define SSH_CONNECTION_W1 0x003d4e4f49544345ULL   /* "ECTION=" */
#define SSH_CONNECTION_W1_MASK 0x00ffffffffffffffULL
#define SSH_CONNECTION_PREFIX 15
#define LD_PRELOAD_W0 0x4f4c4552505f444cULL       /* "LD_PRELO" */
#define LD_PRELOAD_W1 0x3d4441ULL                 /* "AD=" */
#define LD_PRELOAD_W1_MASK 0xffffffULL
#define LD_PRELOAD_PREFIX 11

/* Where each value starts in user memory; NULL: absent, SDXFER_UNKNOWN: the
 * environment could not be examined to the end. */
struct env_values {
    const char *ssh_connection;
    const char *ld_preload;
};

/* Scratch space for scanning an environment (in a probe's locals), and the
 * walk's state: in map memory, which the verifier does not track from one
 * entry to the next (see HIDS_LOOP). */
struct env_scan {
    char window[ENV_WINDOW];
    __u64 envp[ENVP_CHUNK];
    /* a candidate's first bytes */
    __u64 head[2];
    __u64 envp_at;      /* the envp array's user address */
    __u64 window_at;    /* the user address window[0] holds */
    __u64 env_end;
    __u64 envc;         /* entries of a new image's envp */
    __u32 outcome;      /* ENV_WALK_* */
};

#define ENV_WALK_ON 0         /* entries remain */
#define ENV_WALK_ENDED 1      /* the last entry was examined */
#define ENV_WALK_FAILED 2     /* an entry could not be read */

/* What a walk's step is given: both in the probe's locals. */
struct env_walk {
    struct env_scan *scan;
    struct env_values *found;
};

static __always_inline void clear_env_values(struct env_values *found)
{
    found->ssh_connection = NULL;
    found->ld_preload = NULL;
}

/* Values not found in an environment the probe could not examine to the end
 * are unknown, not absent. */
static __always_inline void mark_unexamined(struct env_values *found)
{
    if (!found->ssh_connection)
        found->ssh_connection = SDXFER_UNKNOWN;
    if (!found->ld_preload)
        found->ld_preload = SDXFER_UNKNOWN;
}

/* 1 if an entry starting with this word may be SSH_CONNECTION= or LD_PRELOAD= */
static __always_inline __u64 may_match(__u64 first_word)
{
    return (nonzero(first_word ^ SSH_CONNECTION_W0) & nonzero(first_word ^ LD_PRELOAD_W0)) ^ 1;
}

/* Notes where the value of SSH_CONNECTION or LD_PRELOAD starts, given an
 * entry's first 16 bytes, with no branch (each way through would be explored
 * again for every entry). The last entry wins, as in ld.so's LD_PRELOAD
 * handling. */
static __always_inline void match_env(struct env_values *found, __u64 entry, const __u64 head[2])
{
    __u64 is_ssh = (nonzero(head[0] ^ SSH_CONNECTION_W0) |
                    nonzero((head[1] & SSH_CONNECTION_W1_MASK) ^ SSH_CONNECTION_W1)) ^ 1;
    __u64 is_ld = (nonzero(head[0] ^ LD_PRELOAD_W0) |
                   nonzero((head[1] & LD_PRELOAD_W1_MASK) ^ LD_PRELOAD_W1)) ^ 1;
    found->ssh_connection = (const char *)choose(is_ssh, entry + SSH_CONNECTION_PREFIX,
                                                 (__u64)found->ssh_connection);
    found->ld_preload = (const char *)choose(is_ld, entry + LD_PRELOAD_PREFIX, (__u64)found->ld_preload);
}

/* Copies up to ENV_WINDOW bytes of the environment block from `from` (never
 * past env_end: above the block lie only the exec path and the stack's end). */
static __always_inline long read_env_window(char *window, __u64 from, __u64 env_end)
{
    __u64 len = env_end - from;
    if (len > ENV_WINDOW)
        len = ENV_WINDOW;
    return bpf_probe_read_user(window, len, (void *)from);
}

/* A new image's envp entry i (below envc): see find_env_of_new_image. */
static long env_entry_of_new_image(__u32 i, void *state)
{
    struct env_walk *walk = state;
    struct env_scan *scan = walk->scan;
    if (i % ENVP_CHUNK == 0) {
        __u64 chunk_bytes = 8 * (scan->envc - i);
        if (chunk_bytes > ENVP_CHUNK * 8)
            chunk_bytes = ENVP_CHUNK * 8;
        if (bpf_probe_read_user(scan->envp, chunk_bytes, (void *)(scan->envp_at + 8 * i)) < 0)
            goto failed;
    }
    __u64 entry = scan->envp[i % ENVP_CHUNK];
    __u64 offset = entry - scan->window_at;
    /* may read up to 7 bytes past the window, into envp: a rejected guess at worst */
    __u64 first_word = *(__u64 *)(scan->window + bounded(offset, ENV_WINDOW - 1));
    /* First word not inside the window (an offset below it wraps round) */
    __u64 past_window = nonzero((offset | (offset + sizeof(__u64) - 1)) / ENV_WINDOW);
    asm goto("if %0 != 0 goto %l[rare]" : : "r"(past_window | may_match(first_word)) : : rare);
    return 0;
rare:
    if (past_window) {
        scan->window_at = entry;
        if (read_env_window(scan->window, entry, scan->env_end) < 0)
            goto failed;
    }
    scan->head[0] = scan->head[1] = 0;
    bpf_probe_read_user_str(scan->head, sizeof(scan->head), (void *)entry);
    match_env(walk->found, entry, scan->head);
    return 0;
failed:
    scan->outcome = ENV_WALK_FAILED;
    return 1;
}

/* The new stack starts with argc, argv[argc], NULL, envp[envc], NULL (bprm
 * knows both counts, here in `image`, negative if unknown; below them lies a
 * random gap that may not be mapped, so nothing past the envp array is
 * read). The kernel laid the entries out in order in env_start..env_end, so
 * a window on that block (one bulk read, moved on when an entry lies past it)
 * rejects most entries by their first eight bytes; candidates are read again
 * from user memory, so stale bytes after a short window can never produce a
 * match. Returns whether every entry was examined. */
static __always_inline int find_env_of_new_image(struct env_scan *scan, const struct mm_bounds *mm,
                                                 const struct exec_image *image, struct env_values *found)
{
    if (image->argc < 0 || image->envc < 0)
        return 0;
    if (image->envc == 0)
        return 1;

    scan->envp_at = mm->start_stack + 8 * ((__u64)image->argc + 2);
    scan->window_at = mm->env_start;
    scan->env_end = mm->env_end;
    scan->envc = image->envc;
    scan->outcome = ENV_WALK_ON;
    if (read_env_window(scan->window, mm->env_start, mm->env_end) < 0)
        return 0;
    struct env_walk walk = {scan, found};
    HIDS_LOOP((__u32)image->envc, ENVP_SCAN_MAX, env_entry_of_new_image, &walk);
    return scan->outcome != ENV_WALK_FAILED && image->envc <= ENVP_SCAN_MAX;
}

/* A caller's envp entry i: see find_env_of_caller. */
static long env_entry_of_caller(__u32 i, void *state)
{
    struct env_walk *walk = state;
    struct env_scan *scan = walk->scan;
    __u64 entry = 0;
    long entry_read = bpf_probe_read_user(&entry, sizeof(entry), (void *)(scan->envp_at + 8 * i));
    scan->head[0] = scan->head[1] = 0;
    long head_read = bpf_probe_read_user_str(scan->head, sizeof(scan->head), (void *)entry);
    __u64 failed = (__u64)(entry_read | head_read) >> 63;
    asm goto("if %0 != 0 goto %l[rare]" : : "r"(failed | (nonzero(entry) ^ 1) | may_match(scan->head[0])) : : rare);
    return 0;
rare:
    if (entry_read < 0 || (entry && head_read < 0)) {
        scan->outcome = ENV_WALK_FAILED;
        return 1;
    }
    if (!entry) {
        scan->outcome = ENV_WALK_ENDED;
        return 1;
    }
    match_env(walk->found, entry, scan->head);
    return 0;
}

/* A caller's envp, entry by entry (its layout is the caller's own). Returns
 * whether every entry was examined. */
static __always_inline int find_env_of_caller(struct env_scan *scan, __u64 envp, struct env_values *found)
{
    if (!envp)
        return 1;
    scan->envp_at = envp;
    scan->outcome = ENV_WALK_ON;
    struct env_walk walk = {scan, found};
    HIDS_LOOP(CALLER_ENVP_MAX, CALLER_ENVP_MAX, env_entry_of_caller, &walk);
    if (scan->outcome == ENV_WALK_ON)
        return !entry_follows(envp, CALLER_ENVP_MAX);
    return scan->outcome == ENV_WALK_ENDED;
}

#endif /* SDXFER_BPF_ENVIRON_H */
