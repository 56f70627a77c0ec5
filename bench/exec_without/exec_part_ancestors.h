/* bench/kernel_cost.py's stand-in for bpf/exec_part_ancestors.h: no ancestors walk. */
#ifndef SDXFER_BPF_EXEC_PART_ANCESTORS_H
#define SDXFER_BPF_EXEC_PART_ANCESTORS_H

static __always_inline __u32 count_ancestors(struct exec_area *area)
{
    (void)area;
    return 0;
}

#endif
