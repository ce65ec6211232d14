#include "MallocControl.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

size_t lariat_resident_anonymous_bytes(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char text[128];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return 0;
    text[n] = 0;
    unsigned long total = 0, resident = 0, shared = 0;
    if (sscanf(text, "%lu %lu %lu", &total, &resident, &shared) != 3 || shared > resident) return 0;
    long page = sysconf(_SC_PAGESIZE);
    return (size_t)(resident - shared) * (size_t)(page > 0 ? page : 4096);
}

#if defined(__GLIBC__)
#include <malloc.h>

int lariat_heap_usage_get(lariat_heap_usage *usage) {
    struct mallinfo2 info = mallinfo2();
    usage->in_use = info.uordblks + info.hblkhd;
    usage->free = info.fordblks;
    return 1;
}

int lariat_heap_trim(void) { return malloc_trim(0); }
#else
int lariat_heap_usage_get(lariat_heap_usage *usage) {
    usage->in_use = 0;
    usage->free = 0;
    return 0;
}

int lariat_heap_trim(void) { return -1; }
#endif
