/* eva_status.h: status codes and the per-thread error message.
 *
 * Library code never prints and never exits: a failing function records one line saying what
 * failed and where (file, tensor, option) with eva_fail() and returns a negative eva_status.
 * Only harness/main.c turns a status into a message on stderr and an exit code
 * (eva_status_exit_code): 2 for bad input, 3 for internal failures.
 */
#ifndef EVA_STATUS_H
#define EVA_STATUS_H

typedef enum {
    EVA_OK = 0,
    EVA_ERR_IO = -1,          /* missing or unreadable file, write failure */
    EVA_ERR_FORMAT = -2,      /* corrupt or malformed file contents */
    EVA_ERR_SHAPE = -3,       /* wrong tensor shape, missing/unexpected tensor */
    EVA_ERR_NOMEM = -4,       /* allocation failed or would exceed a limit */
    EVA_ERR_CUDA = -5,        /* CUDA runtime failure */
    EVA_ERR_CUBLAS = -6,
    EVA_ERR_CUDNN = -7,
    EVA_ERR_UNSUPPORTED = -8, /* valid request this build or variant cannot do */
    EVA_ERR_INVALID_ARG = -9, /* bad option, unknown variant or tap, bad config value */
    EVA_ERR_NO_DEVICE = -10,  /* --impl cuda without a usable GPU */
    EVA_ERR_INTERNAL = -11,   /* a bug: an invariant did not hold */
    EVA_ERR_MISMATCH = -12    /* a verification or parity comparison failed (exit 1) */
} eva_status;

#if defined(__GNUC__)
#define EVA_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EVA_PRINTF(a, b)
#endif

/* Records a one-line message (printf-style) for this thread and returns st unchanged,
 * so call sites read:  return eva_fail(EVA_ERR_FORMAT, "%s: header is not JSON", path); */
eva_status eva_fail(eva_status st, const char *fmt, ...) EVA_PRINTF(2, 3);
/* Prefixes the recorded message with "context: " (for callers adding where it happened). */
void eva_fail_context(const char *fmt, ...) EVA_PRINTF(1, 2);
const char *eva_last_error(void);
void eva_clear_error(void);
const char *eva_status_name(eva_status st);
/* 0 ok, 1 mismatch, 2 bad input/usage/no device, 3 internal. */
int eva_status_exit_code(eva_status st);

#endif
