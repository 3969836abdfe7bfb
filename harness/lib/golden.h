/* golden.h: HDF5 input and output of the harness.
 *
 * Owns: reading a golden file (docs/formats.md "Golden activations": root attributes schema, config,
 * weights, generator, seed; /inputs/pixel_values, /inputs/input_ids; /acts/<tap>), reading the
 * /inputs group of an `encode --inputs` file (same layout), and writing encode's output file.
 * Does not own: which tap names exist for a config (eva_tap.h), comparing (compare.h).
 *
 * Every reader checks rank, dimensions and type class of a dataset before it allocates, caps
 * what it allocates (EVA_H5_MAX_BYTES), checks the shapes against the config when one is known
 * and checks that the file really stores the bytes a dataset declares, so no allocation is sized
 * by an unchecked field. HDF5's own error stack printing is switched off (eva_h5_quiet); every
 * failure becomes one eva_fail() message naming the file and the dataset or attribute.
 *
 * Guarded reading: libhdf5 (1.10 at least) cannot be trusted with hostile files (heap overflows,
 * use-after-free and endless loops inside the library on fuzzed files). So every file named by a
 * path is read in a child process (fork) under limits: address space = the parent's current size
 * + EVA_H5_GUARD_MEM, no core file, a wall-clock alarm of EVA_H5_GUARD_SECONDS + 1 s per 50 MB of
 * file (or $EVABENCH_H5_TIMEOUT seconds). The child writes what it read to a memfd; the parent
 * checks that stream and keeps it (activations are copied out on demand). A child that dies (a
 * signal, a sanitizer abort, the memory limit) or times out becomes EVA_ERR_FORMAT with one line:
 * "FILE: libhdf5 crashed reading this file (signal N)" / "... timed out ...". Cost: one fork and
 * one extra copy of the data (see golden.c for the measured figures).
 */
#ifndef EVA_GOLDEN_H
#define EVA_GOLDEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eva_config.h"
#include "eva_status.h"
#include "eva_tap.h"

/* Largest dataset any reader allocates (bytes once converted to float32/int32). */
#define EVA_H5_MAX_BYTES ((int64_t)1 << 32)
/* Largest string attribute (config JSON, weights path, generator). */
#define EVA_H5_MAX_ATTR_BYTES ((int64_t)1 << 22)
/* Most datasets in /acts. */
#define EVA_GOLDEN_MAX_ACTS 100000
#define EVA_GOLDEN_SCHEMA "evabench-golden/1"
/* Address space the guarded reader may add to its parent's. */
#define EVA_H5_GUARD_MEM ((int64_t)6 << 30)
/* Wall-clock limit of the guarded reader for a small file (plus 1 s per 50 MB). */
#define EVA_H5_GUARD_SECONDS 20

/* Switches off HDF5's automatic printing of its error stack (idempotent). */
void eva_h5_quiet(void);

/* A reader run in the guarded child: reads `path` into out (result_bytes of shared memory). */
typedef eva_status (*eva_h5_reader)(void *ctx, const char *path, void *out);
/* Runs fn in a child under the same limits as the golden reader and copies its result_bytes to
 * result on success; a crash or timeout of the child is EVA_ERR_FORMAT naming the file, a failure
 * of fn comes back with its status and message. For HDF5 files other than goldens and dumps (the
 * zero-shot and retrieval embedding caches). */
eva_status eva_h5_guarded_call(const char *path, eva_h5_reader fn, void *ctx, void *result, size_t result_bytes);

/* The /inputs of a golden or encode input file. Either part may be absent (pixels == NULL,
 * ids == NULL). Shapes are exactly as stored: pixel_values [B,C,H,W] (rank 4, any dims >= 1;
 * callers check C == 3 and H == W == image_size), input_ids [T,L]. */
typedef struct {
    float *pixels;      /* [B,C,H,W] float32, owned */
    int64_t pix_shape[4];
    int32_t *ids;       /* [T,L], owned; int64 files are range-checked into int32 */
    int64_t ids_shape[2];
} eva_inputs;

/* Reads /inputs/pixel_values and /inputs/input_ids of `path` (either may be missing; a file with
 * neither, or without an /inputs group, is an error), guarded (see above). */
eva_status eva_inputs_read(eva_inputs *in, const char *path);
/* The same, with the shapes checked against cfg before anything is read: pixel_values must be
 * [B,3,S,S] with S = image_size, input_ids [T,L] with L = context_length. cfg may be NULL. */
eva_status eva_inputs_read_for(eva_inputs *in, const char *path, const eva_config *cfg);
/* Unguarded, in-process reading of an HDF5 file image in memory (fuzzing and tests only: a
 * hostile image can crash the process inside libhdf5). `name` is used in messages. */
eva_status eva_inputs_read_image(eva_inputs *in, const void *buf, size_t len, const char *name,
                                 const eva_config *cfg);
/* Checks the pixel tensor is [B,3,S,S] with S = image_size; message names `path` and both shapes. */
eva_status eva_inputs_check_pixels(const eva_inputs *in, int image_size, const char *path);
/* Checks input_ids is [T,L] with L = context_length and every id in [0, vocab_size). */
eva_status eva_inputs_check_ids(const eva_inputs *in, int context_length, int vocab_size, const char *path);
void eva_inputs_free(eva_inputs *in);
/* Number of images / texts (0 when absent). */
static inline int64_t eva_inputs_images(const eva_inputs *in) { return in->pixels ? in->pix_shape[0] : 0; }
static inline int64_t eva_inputs_texts(const eva_inputs *in) { return in->ids ? in->ids_shape[0] : 0; }

/* An opened golden: attributes and inputs read, activations listed (read on demand). */
typedef struct {
    char path[1024];
    char dir[1024];      /* folder holding the file ("." when none) */
    char *schema;        /* owned strings; NULL when the attribute is absent */
    char *config_json;
    char *weights;
    char *generator;
    char *compute_dtype; /* "float64" or "float32" (make_golden.py --weights); NULL: float64 */
    int64_t seed;
    bool has_seed;
    eva_inputs inputs;
    int n_acts;
    char (*acts)[EVA_TAP_NAME_MAX]; /* [n_acts] names of the datasets in /acts, sorted by name */
    struct eva_golden_act *act_info; /* [n_acts], private: shape and where the data is */
    char (*attr_names)[EVA_TAP_NAME_MAX]; /* private: the root string attributes (eva_golden_attr) */
    char **attr_values;
    int n_attrs;
    int64_t dump;        /* private: file descriptor + 1 of the decoded data (0: none) */
} eva_golden;

/* Opens a golden, guarded (see above): checks the schema attribute, reads the string attributes
 * and the inputs, reads /acts (every member must be a dataset whose name fits EVA_TAP_NAME_MAX).
 * Shapes are checked against the golden's own config attribute (when it parses) before reading:
 * an activation whose declared shape that config does not expect is listed but not read (its
 * shape is reported by eva_golden_act_shape, eva_golden_read_act refuses it). */
eva_status eva_golden_open(eva_golden *g, const char *path);
/* The same with the shapes checked against cfg instead of the config attribute (cfg may be NULL). */
eva_status eva_golden_open_for(eva_golden *g, const char *path, const eva_config *cfg);
/* Unguarded, in-process: a golden from an HDF5 file image (fuzzing and tests only). */
eva_status eva_golden_open_image(eva_golden *g, const void *buf, size_t len, const char *name,
                                 const eva_config *cfg);
/* Rank and dims of /acts/<name> as declared (checked: rank 1..4, float class, every dim >= 1). */
eva_status eva_golden_act_shape(const eva_golden *g, const char *name, int *ndim, int64_t shape[4]);
/* Reads /acts/<name> as float32 into a malloc'd buffer; *data owned by the caller. */
eva_status eva_golden_read_act(const eva_golden *g, const char *name, float **data, int *ndim, int64_t shape[4]);
bool eva_golden_has_act(const eva_golden *g, const char *name);
/* Path of the golden's weights attribute resolved against the golden's folder (into out). */
eva_status eva_golden_weights_path(const eva_golden *g, char *out, size_t cap);
void eva_golden_close(eva_golden *g);

/* A tap dump of any implementation, in the golden layout: /acts/<name> float16, float32 or float64
 * datasets (rank 1..4), optional /inputs, optional root attributes (schema, if present, must be
 * evabench-golden/1; config, generator, impl, precision). Opened into an eva_golden (weights,
 * seed unset) so eva_golden_act_shape / eva_golden_read_act read its datasets. At least one
 * /acts dataset is required. Guarded like eva_golden_open; sizes are checked against the caps
 * and the stored bytes only (a dump's names need not be this project's taps). */
eva_status eva_dump_open(eva_golden *g, const char *path);
/* Unguarded, in-process: a tap dump from an HDF5 file image (fuzzing and tests only). */
eva_status eva_dump_open_image(eva_golden *g, const void *buf, size_t len, const char *name);
/* A string attribute of the root group of an opened golden or dump (*value NULL when absent;
 * owned by the caller). The reader records the first EVA_DUMP_MAX_ATTRS (64) string attributes
 * whose names are shorter than EVA_TAP_NAME_MAX. */
eva_status eva_golden_attr(const eva_golden *g, const char *name, char **value);

/* Encode's output file. Datasets are float32, written whole. */
typedef struct {
    int64_t file;        /* hid_t */
    char path[1024];
} eva_h5out;

eva_status eva_h5out_create(eva_h5out *o, const char *path);
eva_status eva_h5out_write(eva_h5out *o, const char *name, const float *data, int ndim, const int64_t *shape);
/* Writes rows [offset, offset + shape[0]) of the float32 dataset /name of `total` rows (created,
 * with intermediate groups, on the first call; later calls must give the same trailing dims). */
eva_status eva_h5out_write_rows(eva_h5out *o, const char *name, const float *data, int ndim, const int64_t *shape,
                                int64_t offset, int64_t total);
/* Writes int32 ids [rows, cols] as an int64 dataset /name (the golden's /inputs/input_ids type). */
eva_status eva_h5out_write_ids(eva_h5out *o, const char *name, const int32_t *ids, int64_t rows, int64_t cols);
/* A string attribute on the root group (fixed-length ASCII, easy to read from C). */
eva_status eva_h5out_attr(eva_h5out *o, const char *name, const char *value);
/* Closes (flushes) the file; returns an error if the close failed. Accepts a zeroed object. */
eva_status eva_h5out_close(eva_h5out *o);

#endif
