/* stb_image_resize_impl.c: the implementation of stb_image_resize, from the header of
 * Debian's libstb-dev, compiled into fuzz_image only, for the same reason as
 * stb_image_impl.c. It is built without libFuzzer's comparison tracing: its loops
 * compare indices once per pixel and channel, and tracing them made resizing a large
 * image ten times slower while telling the fuzzer nothing about the input's structure. */
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image_resize.h>
