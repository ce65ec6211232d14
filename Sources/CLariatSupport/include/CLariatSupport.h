#ifndef LARIAT_SUPPORT_H
#define LARIAT_SUPPORT_H
#include <stddef.h>
#include <stdint.h>
#include "MallocControl.h"

/* XOR `len` bytes at `data` with the 4-byte WebSocket masking key, starting at key
   offset `keyOffset` (0..3). Returns the key offset for the next byte, so a payload
   may be unmasked in pieces as it arrives. */
uint32_t lariat_ws_mask(uint8_t *data, size_t len, const uint8_t key[4], uint32_t keyOffset);
#endif
