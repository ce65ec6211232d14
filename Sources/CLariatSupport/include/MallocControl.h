#ifndef LARIAT_MALLOC_CONTROL_H
#define LARIAT_MALLOC_CONTROL_H
#include <stddef.h>

/* The C library allocator's view of the heap, for deciding when to give memory back.
   Swift's Glibc module does not export malloc_trim, and other C libraries lack both. */
typedef struct {
    size_t in_use;   /* bytes the program holds (arena chunks plus mmapped chunks) */
    size_t free;     /* bytes free inside the arenas: reusable, possibly still resident */
} lariat_heap_usage;

/* Returns 1 and fills `usage` on glibc; 0 elsewhere. Walks every arena's free lists under
   its lock: call it seconds apart, not per request. */
int lariat_heap_usage_get(lariat_heap_usage *usage);

/* Gives free pages of every arena back to the kernel (glibc malloc_trim(0)). Returns 1 if
   memory was released, 0 if not, -1 where the C library has no such call. */
int lariat_heap_trim(void);

/* The process's resident memory that is not backed by a file (heap, stacks: what the
   allocator can give back), in bytes, from /proc/self/statm; 0 where unknown. */
size_t lariat_resident_anonymous_bytes(void);
#endif
