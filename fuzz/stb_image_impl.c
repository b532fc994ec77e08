/* stb_image_impl.c: the implementation of stb_image, from the header of Debian's
 * libstb-dev, compiled into fuzz_image only.
 *
 * sevo links Debian's prebuilt libstb, which carries no coverage instrumentation and no
 * sanitizer checks: fuzzing image_load through it would be blind inside the decoder,
 * where the risk is. Defining the same functions here makes the linker bind sevo's
 * calls to these instrumented copies (an executable's definitions come before a shared
 * library's). Warnings are off for this file only: it is third-party code.
 *
 * All sanitizers apply to it, but for the few UBSan checks that fuzz/stb_image.ignorelist
 * switches off, each in one function, for undefined behaviour that touches no memory it
 * must not and that sevo cannot prevent. The memory errors the fuzzer found in this
 * stb_image (2.27) are guarded against in src/data/image.c. */
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
