#ifndef LARIAT_CLIBUV_SHIM_H
#define LARIAT_CLIBUV_SHIM_H
#include <uv.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <errno.h>

/* TCP_NOTSENT_LOWAT keeps the kernel send queue short so our scheduler, not the
   kernel, decides what goes next (interactive frames never wait behind megabytes). */
static inline int lariat_set_notsent_lowat(int fd, int bytes) {
#ifdef TCP_NOTSENT_LOWAT
    return setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, sizeof(bytes));
#else
    (void)fd; (void)bytes; return 0;
#endif
}
static inline int lariat_set_sockopt_int(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof(value));
}
#endif
