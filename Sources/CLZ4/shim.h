#ifndef LARIAT_CLZ4_SHIM_H
#define LARIAT_CLZ4_SHIM_H
#include <lz4.h>
#endif
