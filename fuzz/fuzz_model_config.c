/* fuzz_model_config.c: libFuzzer target for a checkpoint's config.json reader,
 * vlm_config_load (src/model/vlm.c): the file every `--model_path` directory carries, and
 * the first thing sevo reads of a model someone else wrote.
 *
 * Besides surviving any input (sizes near INT_MAX, fractions, wrong types), a config that
 * loads must be valid and must keep the property checkpoints rely on: written back by
 * vlm_config_save, it loads again to the same configuration, field for field. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "model/vlm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[1100];
    if (!path[0]) fuzz_path(path, sizeof path, "config.json");
    fuzz_write(path, data, size);

    vlm_config c;
    sevo_error err;
    if (vlm_config_load(&c, path, &err) != 0) {
        FUZZ_CHECK(err.msg[0] != '\0'); /* every failure says why */
        return 0;
    }
    FUZZ_CHECK(vlm_config_validate(&c, path, &err) == 0);
    FUZZ_CHECK(vlm_config_num_patches(&c) >= 1);

    FUZZ_CHECK(vlm_config_save(&c, path, &err) == 0);
    vlm_config again;
    FUZZ_CHECK(vlm_config_load(&again, path, &err) == 0);
    /* both start from vlm_config_tiny's memset, so padding compares equal too */
    FUZZ_CHECK(memcmp(&c, &again, sizeof c) == 0);
    return 0;
}
