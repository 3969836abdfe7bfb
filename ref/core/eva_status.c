/* eva_status.c: the per-thread error message behind eva_fail() / eva_last_error(). */
#include "eva_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EVA_ERRMSG_MAX 4096
static _Thread_local char eva_errmsg[EVA_ERRMSG_MAX];

eva_status eva_fail(eva_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(eva_errmsg, sizeof eva_errmsg, fmt, ap);
    va_end(ap);
    return st;
}

void eva_fail_context(const char *fmt, ...) {
    char prefix[1024];
    char old[EVA_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, eva_errmsg, sizeof old);
    size_t np = strlen(prefix);
    if (np + 2 >= sizeof eva_errmsg) np = sizeof eva_errmsg - 3;
    memcpy(eva_errmsg, prefix, np);
    memcpy(eva_errmsg + np, ": ", 2);
    size_t room = sizeof eva_errmsg - np - 3;
    size_t no = strnlen(old, room);
    memcpy(eva_errmsg + np + 2, old, no);
    eva_errmsg[np + 2 + no] = '\0';
}

const char *eva_last_error(void) { return eva_errmsg[0] ? eva_errmsg : "unknown error"; }

void eva_clear_error(void) { eva_errmsg[0] = '\0'; }

const char *eva_status_name(eva_status st) {
    switch (st) {
    case EVA_OK: return "ok";
    case EVA_ERR_IO: return "io";
    case EVA_ERR_FORMAT: return "format";
    case EVA_ERR_SHAPE: return "shape";
    case EVA_ERR_NOMEM: return "nomem";
    case EVA_ERR_CUDA: return "cuda";
    case EVA_ERR_CUBLAS: return "cublas";
    case EVA_ERR_CUDNN: return "cudnn";
    case EVA_ERR_UNSUPPORTED: return "unsupported";
    case EVA_ERR_INVALID_ARG: return "invalid-argument";
    case EVA_ERR_NO_DEVICE: return "no-device";
    case EVA_ERR_INTERNAL: return "internal";
    case EVA_ERR_MISMATCH: return "mismatch";
    }
    return "unknown";
}

int eva_status_exit_code(eva_status st) {
    switch (st) {
    case EVA_OK: return 0;
    case EVA_ERR_MISMATCH: return 1;
    case EVA_ERR_CUDA: case EVA_ERR_CUBLAS: case EVA_ERR_CUDNN: case EVA_ERR_INTERNAL: return 3;
    default: return 2;
    }
}
