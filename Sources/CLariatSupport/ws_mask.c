#include "CLariatSupport.h"
#include <string.h>

uint32_t lariat_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint32_t keyOffset) {
    size_t i = 0;
    uint32_t k = keyOffset & 3;
    /* Head: byte-wise until the key lines up with offset 0. */
    while (i < len && k != 0) { data[i++] ^= key[k]; k = (k + 1) & 3; }
    uint8_t kk[8] = { key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3] };
    uint64_t k64; memcpy(&k64, kk, 8);
    for (; i + 8 <= len; i += 8) {
        uint64_t w; memcpy(&w, data + i, 8); w ^= k64; memcpy(data + i, &w, 8);
    }
    while (i < len) { data[i++] ^= key[k]; k = (k + 1) & 3; }
    return k;
}
