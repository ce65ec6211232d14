// A malloc interposer that counts calls. The definitions below take precedence over the C
// library's for the whole process (the executable comes first in symbol lookup); each one
// counts, then calls the next definition, found with dlsym(RTLD_NEXT).
//
// dlsym may itself allocate (calloc for its error state) before the real functions are known:
// those few early requests are served from a static arena, whose blocks are never freed.
#define _GNU_SOURCE
#include "CLariatAllocCounter.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

typedef void *(*malloc_fn)(size_t);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void (*free_fn)(void *);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_alloc_fn)(size_t, size_t);
typedef void *(*valloc_fn)(size_t);

static malloc_fn real_malloc;
static calloc_fn real_calloc;
static realloc_fn real_realloc;
static free_fn real_free;
static posix_memalign_fn real_posix_memalign;
static aligned_alloc_fn real_aligned_alloc;
static aligned_alloc_fn real_memalign;
static valloc_fn real_valloc;
static valloc_fn real_pvalloc;

static atomic_int enabled;
static atomic_uint_fast64_t n_malloc, n_calloc, n_realloc, n_aligned, n_free;

// The arena for allocations made while resolving (dlsym's own). 64 KiB is far more than it uses.
static _Alignas(16) unsigned char arena[64 * 1024];
static size_t arena_used;
static int resolving;

static int in_arena(const void *p) {
    return (const unsigned char *)p >= arena && (const unsigned char *)p < arena + sizeof arena;
}

static void *arena_alloc(size_t size) {
    size_t rounded = (size + 15) & ~(size_t)15;
    if (rounded > sizeof arena - arena_used) return NULL;
    void *p = arena + arena_used;
    arena_used += rounded;
    return p;  // static storage: already zeroed, so calloc may use it too
}

static void resolve(void) {
    if (real_malloc || resolving) return;
    resolving = 1;
    real_calloc = (calloc_fn)dlsym(RTLD_NEXT, "calloc");
    real_malloc = (malloc_fn)dlsym(RTLD_NEXT, "malloc");
    real_realloc = (realloc_fn)dlsym(RTLD_NEXT, "realloc");
    real_free = (free_fn)dlsym(RTLD_NEXT, "free");
    real_posix_memalign = (posix_memalign_fn)dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (aligned_alloc_fn)dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = (aligned_alloc_fn)dlsym(RTLD_NEXT, "memalign");
    real_valloc = (valloc_fn)dlsym(RTLD_NEXT, "valloc");
    real_pvalloc = (valloc_fn)dlsym(RTLD_NEXT, "pvalloc");
    resolving = 0;
}

static inline void count(atomic_uint_fast64_t *counter) {
    if (atomic_load_explicit(&enabled, memory_order_relaxed))
        atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

void *malloc(size_t size) {
    if (!real_malloc) {
        resolve();
        if (!real_malloc) return arena_alloc(size);
    }
    count(&n_malloc);
    return real_malloc(size);
}

void *calloc(size_t n, size_t size) {
    if (!real_calloc) {
        resolve();
        if (!real_calloc) return size && n > SIZE_MAX / size ? NULL : arena_alloc(n * size);
    }
    count(&n_calloc);
    return real_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    if (!real_realloc) resolve();
    if (in_arena(p)) {
        // An arena block cannot grow in place: move it to the real heap (its old size is
        // unknown, but never more than what is left of the arena after it).
        void *moved = malloc(size);
        size_t available = (size_t)(arena + sizeof arena - (unsigned char *)p);
        if (moved) memcpy(moved, p, size < available ? size : available);
        return moved;
    }
    count(&n_realloc);
    return real_realloc(p, size);
}

void free(void *p) {
    if (!p || in_arena(p)) return;
    if (!real_free) resolve();
    count(&n_free);
    real_free(p);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (!real_posix_memalign) resolve();
    count(&n_aligned);
    return real_posix_memalign(out, alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    if (!real_aligned_alloc) resolve();
    count(&n_aligned);
    return real_aligned_alloc(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    if (!real_memalign) resolve();
    count(&n_aligned);
    return real_memalign(alignment, size);
}

void *valloc(size_t size) {
    if (!real_valloc) resolve();
    count(&n_aligned);
    return real_valloc(size);
}

void *pvalloc(size_t size) {
    if (!real_pvalloc) resolve();
    count(&n_aligned);
    return real_pvalloc(size);
}

void lariat_alloc_counter_enable(int on) { atomic_store(&enabled, on ? 1 : 0); }

void lariat_alloc_counter_reset(void) {
    atomic_store(&n_malloc, 0);
    atomic_store(&n_calloc, 0);
    atomic_store(&n_realloc, 0);
    atomic_store(&n_aligned, 0);
    atomic_store(&n_free, 0);
}

void lariat_alloc_counter_get(lariat_alloc_counts *counts) {
    counts->malloc = atomic_load(&n_malloc);
    counts->calloc = atomic_load(&n_calloc);
    counts->realloc = atomic_load(&n_realloc);
    counts->aligned = atomic_load(&n_aligned);
    counts->free = atomic_load(&n_free);
}
