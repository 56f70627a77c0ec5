/*
 * A part of exec.bpf.h: the parent chain.
 * bench/exec_without/ has a stand-in of the same name without it (no ancestors).
 */
#ifndef SDXFER_BPF_EXEC_PART_ANCESTORS_H
#define SDXFER_BPF_EXEC_PART_ANCESTORS_H

/* Walks the ancestors into the locals; the count goes through map memory, so
 * the verifier does not check the packer once per way out of the walk. */
static __always_inline __u32 count_ancestors(struct exec_area *area)
{
    area->ancestors_count = walk_ancestors(area->ancestors);
    return *(volatile __u32 *)&area->ancestors_count;
}

#endif /* SDXFER_BPF_EXEC_PART_ANCESTORS_H */
