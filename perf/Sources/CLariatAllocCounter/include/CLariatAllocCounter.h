#ifndef LARIAT_ALLOC_COUNTER_H
#define LARIAT_ALLOC_COUNTER_H

#include <stdint.h>

// Counts the heap allocations of the whole process (every thread, every library: Swift's
// runtime, OpenSSL, libuv, LZ4) by defining malloc & co and forwarding to the C library's.
// glibc has no malloc hooks any more, so interposing is the way. Link this ONLY into the
// program that measures (lariat-allocgate): anything linking it has its allocator wrapped.

typedef struct {
    uint64_t malloc;
    uint64_t calloc;
    uint64_t realloc;
    /// posix_memalign, aligned_alloc, memalign, valloc, pvalloc (Swift asks for these when an
    /// alignment beyond 16 is wanted).
    uint64_t aligned;
    uint64_t free;
} lariat_alloc_counts;

/// Counting is off until enabled; counts are kept when disabled and cleared by reset.
void lariat_alloc_counter_enable(int enabled);
void lariat_alloc_counter_reset(void);
void lariat_alloc_counter_get(lariat_alloc_counts *counts);

#endif
