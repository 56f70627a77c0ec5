/*
 * Field copies into a record: sdxfer_put_str, sdxfer_put_blob (and an
 * array's byte length), sdxfer_put_fixed.
 * A part of sdxfer_runtime.h, which includes it.
 */
#ifndef SDXFER_COPY_H
#define SDXFER_COPY_H

#ifndef SDXFER_RUNTIME_H
#error "include the generated xfer.h, not sdxfer_copy.h"
#endif

/* The cursor as read back from the record's size field (map memory, whose
 * words the verifier does not track; the send sets the size later): every
 * way out of the previous copy reaches the next as one state, so checking
 * a packer costs the sum of its copies, not the product of their outcomes. */
static __always_inline __u32 sdxfer_cursor_blurred(void *rec, __u32 cursor)
{
    volatile __u32 *size = &((struct sdxfer_head *)rec)->size;

    *size = cursor;
    return *size;
}

/* Reads a string into the payload at `cursor`. `cursor_max` is the layout's
 * bound: checking it proves the write in range to the verifier and never
 * fails for a record this header packs. */
static __always_inline __u32 sdxfer_put_str(void *rec, __u32 cursor, __u32 cursor_max,
                                            struct sdxfer_var *var, const char *src,
                                            __u32 max, int from_user)
{
    long n;

    cursor = sdxfer_cursor_blurred(rec, cursor);
    var->off = 0;
    var->len = 0;
    var->lost = 0;
    if (!src)
        return cursor;
    if ((const void *)src == SDXFER_UNKNOWN || cursor > cursor_max) {
        var->lost = SDXFER_LOST_UNKNOWN;
        return cursor;
    }
    if (from_user)
        n = sdxfer_read_user_str((char *)rec + cursor, max + SDXFER_STR_READ_SLACK, src);
    else
        n = sdxfer_read_kernel_str((char *)rec + cursor, max + SDXFER_STR_READ_SLACK, src);
    if (n <= 0) {
        var->lost = SDXFER_LOST_UNKNOWN;
        return cursor;
    }
    n -= 1;
    if (n > max) {
        n = max;
        var->lost = SDXFER_LOST_UNKNOWN;
    }
    var->off = cursor;
    var->len = n;
    return cursor + n;
}

/* Copies the longest prefix of `blob_len` bytes (a blob, or a NUL-separated
 * string list) that fits in `max`, and records exactly how many did not
 * (unknown when blob_len carries SDXFER_LEN_TRUNCATED). */
static __always_inline __u32 sdxfer_put_blob(void *rec, __u32 cursor, __u32 cursor_max,
                                             struct sdxfer_var *var, const void *blob,
                                             __u32 blob_len, __u32 max, int from_user)
{
    long err;
    __u64 n = blob_len & ~SDXFER_LEN_TRUNCATED;
    __u32 lost_unknown = blob_len & SDXFER_LEN_TRUNCATED;

    cursor = sdxfer_cursor_blurred(rec, cursor);
    var->off = 0;
    var->len = 0;
    var->lost = 0;
    if (!blob)
        return cursor;
    if (blob == SDXFER_UNKNOWN || cursor > cursor_max) {
        var->lost = SDXFER_LOST_UNKNOWN;
        return cursor;
    }
    if (n > max) {
        var->lost = n - max;
        n = max;
    }
    if (lost_unknown)
        var->lost = SDXFER_LOST_UNKNOWN;
    sdxfer_bound(n, max);
    if (n == 0)
        err = 0;
    else if (from_user)
        err = sdxfer_read_user((char *)rec + cursor, n, blob);
    else
        err = sdxfer_read_kernel((char *)rec + cursor, n, blob);
    if (err < 0) {
        var->lost = lost_unknown ? SDXFER_LOST_UNKNOWN : blob_len;
        return cursor;
    }
    var->off = cursor;
    var->len = n;
    return cursor + n;
}

/* An array's entry count (or'ed with SDXFER_LEN_TRUNCATED, or
 * SDXFER_LEN_UNKNOWN) as the byte length sdxfer_put_blob takes. */
static __always_inline __u32 sdxfer_entry_bytes(__u32 count, __u32 entry_size)
{
    __u32 n = count & ~SDXFER_LEN_TRUNCATED;

    if (count == SDXFER_LEN_UNKNOWN)
        return count;
    if (n > SDXFER_SLOT_SIZE)
        n = SDXFER_SLOT_SIZE;  /* more than any max already: keeps the product in range */
    return n * entry_size | (count & SDXFER_LEN_TRUNCATED);
}

static __always_inline void sdxfer_put_fixed(void *dst, const void *src, __u32 size)
{
    if (!src || sdxfer_read_kernel(dst, size, src) < 0)
        __builtin_memset(dst, 0, size);
}

#endif /* SDXFER_COPY_H */
