/* golden_dump.h: the stream between the HDF5 reader (golden_h5.c, which runs in a guarded child
 * process) and the golden/inputs objects of golden.h (golden.c). Internal to golden IO.
 *
 * The reader writes every record it read to a file descriptor (a memfd): a fixed head, then
 * records {eva_dump_rec, payload}. The head is written last and carries the reader's status and
 * message, so a reader that dies midway leaves a head without the magic. The parent trusts
 * nothing in the stream: every length, shape and offset is checked against the stream's size.
 */
#ifndef EVA_GOLDEN_DUMP_H
#define EVA_GOLDEN_DUMP_H

#include <stdint.h>

#include "eva_config.h"
#include "eva_status.h"
#include "eva_tap.h"

#define EVA_DUMP_MAGIC "EVAH5DP1"
#define EVA_DUMP_MSG 1024

typedef struct {
    char magic[8];
    int32_t status;          /* eva_status of the reader */
    int32_t reserved;
    char msg[EVA_DUMP_MSG];  /* its eva_last_error() when status != EVA_OK */
} eva_dump_head;

typedef enum {
    EVA_DUMP_SCHEMA = 1,     /* payload: the string, no NUL */
    EVA_DUMP_CONFIG,
    EVA_DUMP_WEIGHTS,
    EVA_DUMP_GENERATOR,
    EVA_DUMP_SEED,           /* payload: int64 */
    EVA_DUMP_PIXELS,         /* payload: float32 [B,C,H,W] */
    EVA_DUMP_IDS,            /* payload: int32 [T,L] */
    EVA_DUMP_ACT,            /* payload: float32, or none when flags & EVA_DUMP_SHAPE_ONLY */
    EVA_DUMP_ATTR,           /* a root string attribute: name, payload the string */
    EVA_DUMP_KIND_END
} eva_dump_kind;

#define EVA_DUMP_SHAPE_ONLY 1 /* the dataset's declared shape did not match what the config expects:
                                 its data was not read */

typedef struct {
    uint32_t kind;
    uint32_t flags;
    int32_t ndim;
    int32_t reserved;
    int64_t shape[4];
    uint64_t nbytes;         /* payload bytes that follow */
    char name[EVA_TAP_NAME_MAX];
} eva_dump_rec;

/* What is read: a golden (schema required), an inputs file (/inputs only), or a tap dump of any
 * implementation (schema optional, /inputs optional, /acts required, no tap-shape expectations). */
typedef enum { EVA_H5_GOLDEN = 1, EVA_H5_INPUTS = 2, EVA_H5_DUMP = 3 } eva_h5_what;
/* Most root string attributes recorded (eva_golden_attr), and their longest name. */
#define EVA_DUMP_MAX_ATTRS 64

/* Reads the HDF5 file `f` (an open hid_t, as int64_t) named `path` and writes the dump to fd.
 * what = EVA_H5_GOLDEN: schema, string attributes, seed, /inputs, /acts; EVA_H5_INPUTS: /inputs;
 * EVA_H5_DUMP: as a golden with schema and /inputs optional and no config expectations.
 * expect: the config that sizes /inputs and /acts (NULL: a golden's own config attribute when it
 * parses, else only the generic caps). Declared sizes are checked before anything is read.
 * Writes the head in every case; returns the status it wrote. */
eva_status eva_h5_dump(int64_t f, const char *path, eva_h5_what what, const eva_config *expect, int fd);
/* Opens `path` with libhdf5 (after checking it is HDF5) and dumps it (the child's whole job). */
eva_status eva_h5_dump_path(const char *path, eva_h5_what what, const eva_config *expect, int fd);
/* The same on an in-memory file image (for fuzzing: no file, no child). */
eva_status eva_h5_dump_image(const void *buf, size_t len, const char *name, eva_h5_what what,
                             const eva_config *expect, int fd);

#endif
