/*
 * A part of exec.bpf.h: the new image's environment values
 * (SSH_CONNECTION, LD_PRELOAD).
 * bench/exec_without/ has a stand-in of the same name without it (none found).
 */
#ifndef SDXFER_BPF_EXEC_PART_ENV_H
#define SDXFER_BPF_EXEC_PART_ENV_H

static __always_inline void env_of_new_image(struct exec_area *area, const struct mm_bounds *mm,
                                             const struct exec_image *image)
{
    if (!find_env_of_new_image(&area->scan, mm, image, &area->found))
        mark_unexamined(&area->found);
}

#endif /* SDXFER_BPF_EXEC_PART_ENV_H */
