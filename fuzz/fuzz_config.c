/* fuzz_config.c: libFuzzer target for the configuration reader, config_load
 * (src/core/config.c): the input is the JSON file of `--config`, loaded on top of the
 * defaults as the CLI does.
 *
 * Besides surviving any input, a file that loads must keep the property sevo relies on
 * when it prints the effective configuration into every output directory: the printed
 * JSON (config_to_json) loads again, on top of the defaults, and prints the same text.
 * That checks the validation (no value gets in that the printed form would refuse), the
 * float formatting (shortest form that reads back as the same float) and the escaping
 * of strings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[1100];
    if (!path[0]) fuzz_path(path, sizeof path, "config.json");
    fuzz_write(path, data, size);

    sevo_config c;
    sevo_error err;
    config_defaults(&c);
    if (config_load(&c, path, &err) != 0) {
        FUZZ_CHECK(err.msg[0] != '\0'); /* every failure says why */
        return 0;
    }
    FUZZ_CHECK(config_validate(&c, path, &err) == 0);

    char *printed = config_to_json(&c);
    FUZZ_CHECK(printed != NULL);
    fuzz_write(path, printed, strlen(printed));
    sevo_config again;
    config_defaults(&again);
    FUZZ_CHECK(config_load(&again, path, &err) == 0);
    char *reprinted = config_to_json(&again);
    FUZZ_CHECK(reprinted != NULL);
    FUZZ_CHECK(strcmp(printed, reprinted) == 0);
    free(printed);
    free(reprinted);
    return 0;
}
