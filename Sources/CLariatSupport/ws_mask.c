#include "CLariatSupport.h"

uint32_t lariat_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint32_t keyOffset) {
    size_t i = 0;
    uint32_t k = keyOffset & 3;
    /* The key, rotated to start at offset k and repeated to 64 bytes: the main loop then XORs
       64-byte blocks with a fixed pattern, which the compiler turns into vector instructions
       (SSE2/AVX), several times faster than 8-byte words. 64 is a multiple of 4, so the
       rotation stays valid from block to block. */
    uint8_t pattern[64];
    for (int j = 0; j < 64; j++) pattern[j] = key[(k + (uint32_t)j) & 3];
    for (; i + 64 <= len; i += 64) {
        for (int j = 0; j < 64; j++) data[i + (size_t)j] ^= pattern[j];
    }
    for (; i < len; i++) { data[i] ^= key[k]; k = (k + 1) & 3; }
    return k;
}
