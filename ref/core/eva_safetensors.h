/* eva_safetensors.h: a validating reader (and a small writer) for the safetensors format.
 *
 * Layout: 8 bytes little-endian u64 N, N bytes of a UTF-8 JSON object (may be right-padded with
 * spaces), then the data buffer. Each key is a tensor name mapped to
 * {"dtype": str, "shape": [int...], "data_offsets": [begin, end]} with offsets relative to the
 * buffer; the optional "__metadata__" maps strings to strings.
 *
 * eva_safetensors_open() trusts nothing: it checks the header length against the file size and a
 * 100 MB cap, the JSON, every entry's fields, the byte size of every tensor (overflow-checked),
 * and, as the reference implementation does, that the tensors tile the buffer exactly (no holes,
 * no overlaps, nothing after the last tensor). Every failure names the file, and the tensor when
 * there is one. Unknown dtype strings are refused at open (their size cannot be checked); known
 * but unsupported dtypes (I64, F64, ...) open fine and are refused by eva_safetensors_read_f32().
 * Data is read with pread() into the caller's buffer in bounded chunks, so a file of any size
 * costs little memory and a file truncated after open gives EVA_ERR_IO, not a SIGBUS.
 *
 * This file does not know the model: matching names against the tensor table is eva_weights.c.
 */
#ifndef EVA_SAFETENSORS_H
#define EVA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "eva_status.h"

#define EVA_ST_MAX_NDIM 8
/* Largest header accepted (bytes); the reference parser's MAX_HEADER_SIZE. */
#define EVA_ST_MAX_HEADER ((uint64_t)100000000)

typedef enum {
    EVA_ST_F32 = 0,
    EVA_ST_F16 = 1,
    EVA_ST_BF16 = 2,
    EVA_ST_OTHER = 3 /* a known safetensors dtype that cannot be converted to fp32 here */
} eva_st_dtype;

typedef struct {
    const char *name;              /* owned by the eva_safetensors handle */
    char dtype_name[16];           /* as in the file, e.g. "BF16", "I64" */
    eva_st_dtype dtype;
    int bits;                      /* bits per element (4, 6, 8, 16, 32, 64) */
    int ndim;                      /* 0..EVA_ST_MAX_NDIM; 0 is a scalar */
    int64_t shape[EVA_ST_MAX_NDIM];
    int64_t numel;                 /* product of shape (1 for a scalar) */
    uint64_t begin, end;           /* byte range in the data buffer, end exclusive */
} eva_st_tensor;

typedef struct eva_safetensors eva_safetensors;

/* Opens and validates `path`. On failure *st is NULL and the message names the file. */
eva_status eva_safetensors_open(eva_safetensors **st, const char *path);
/* Accepts NULL. */
void eva_safetensors_close(eva_safetensors *st);

const char *eva_safetensors_path(const eva_safetensors *st);
/* Tensors in header order (the __metadata__ entry excluded). */
int eva_safetensors_count(const eva_safetensors *st);
const eva_st_tensor *eva_safetensors_get(const eva_safetensors *st, int i);
/* Index of the tensor called `name`, or -1. */
int eva_safetensors_find(const eva_safetensors *st, const char *name);

/* Reads tensor i converted to fp32 (F16/BF16 exactly) into dst, which holds dst_numel floats;
 * dst_numel must equal the tensor's numel. EVA_ERR_UNSUPPORTED naming the tensor for other
 * dtypes; EVA_ERR_IO if the file cannot be read (e.g. it shrank since open). */
eva_status eva_safetensors_read_f32(const eva_safetensors *st, int i, float *dst, int64_t dst_numel);

/* Maps the whole file read-only (mmap PROT_READ, MAP_PRIVATE): *addr, *len. The mapping belongs
 * to the caller (munmap(*addr, *len)) and outlives the handle; tensor i's bytes start at
 * *addr + eva_safetensors_data_offset(st, i). Pages are read from the file (page cache) on first
 * touch and, being clean, may be dropped and re-read under memory pressure. A file truncated while
 * it is mapped faults (SIGBUS) on the next touch of a lost page, as with every mapped loader.
 * EVA_ERR_IO naming the file when the system refuses the mapping. */
eva_status eva_safetensors_map(const eva_safetensors *st, void **addr, size_t *len);
/* Byte offset of tensor i's data from the start of the file (a file handle, not a composite). */
uint64_t eva_safetensors_data_offset(const eva_safetensors *st, int i);
/* 1 when this host's byte order is the file's (little-endian), so mapped values can be read as is. */
int eva_safetensors_native_order(void);

/* Value of a __metadata__ key, or NULL if absent. Owned by the handle. */
const char *eva_safetensors_metadata(const eva_safetensors *st, const char *key);
int eva_safetensors_metadata_count(const eva_safetensors *st);
/* i-th metadata pair (header order); returns 0 and leaves key and value alone when out of range. */
int eva_safetensors_metadata_at(const eva_safetensors *st, int i, const char **key, const char **value);

/* ---- composite handles: tensors assembled from tensors of other handles -------------------------
 * Used for checkpoints split over several files whose tensors need renaming, concatenating or
 * transposing to match the tensor table (the transformers shards of the BAAI repos: q/k/v in three
 * tensors, the text projection transposed, embeddings reshaped; see eva_checkpoint.h). Reshaping
 * is free (same bytes), concatenation is along dim 0 (bytes one after the other); a transposed item
 * is the 2-D transpose of its one piece. Read with eva_safetensors_read_f32 like any handle. */
#define EVA_ST_MAX_PIECES 3
typedef struct {
    const char *name;              /* the name presented (copied) */
    int ndim;
    int64_t shape[EVA_ST_MAX_NDIM];
    int npieces;                   /* 1..EVA_ST_MAX_PIECES, concatenated along dim 0 */
    int sub[EVA_ST_MAX_PIECES];    /* piece k = tensor idx[k] of handle subs[sub[k]] */
    int idx[EVA_ST_MAX_PIECES];
    int transpose;                 /* 1: [a,b] piece presented as [b,a] (npieces 1, ndim 2) */
} eva_st_composite_item;

/* Builds a handle presenting `items` (in that order). Takes ownership of subs[0..nsub) (closed on
 * failure too). Checks every piece exists, all pieces share a dtype, the pieces' element counts sum
 * to the item's shape, and item names are unique. `path` names the checkpoint in messages. */
eva_status eva_safetensors_open_composite(eva_safetensors **st, const char *path, eva_safetensors **subs, int nsub,
                                          const eva_st_composite_item *items, int n);
/* For a tensor that is one untransposed piece of a file (every tensor of a plain handle): the
 * handle and index holding its bytes; returns 0 (and leaves the outputs alone) otherwise. */
int eva_safetensors_source(const eva_safetensors *st, int i, const eva_safetensors **file, int *index);

/* "F32" / "F16" / "BF16" (NULL for EVA_ST_OTHER). */
const char *eva_st_dtype_name(eva_st_dtype dt);

/* One tensor to write: fp32 data converted to `dtype` (F32, F16 or BF16; round to nearest even). */
typedef struct {
    const char *name;
    eva_st_dtype dtype;
    int ndim;
    const int64_t *shape;          /* [ndim]; may be NULL when ndim == 0 */
    const float *data;             /* [numel] */
} eva_st_write_item;

/* Writes a safetensors file in item order, header space-padded to a multiple of 8 bytes.
 * `metadata` is NULL or a NULL-terminated list of key, value, key, value, ... strings. */
eva_status eva_safetensors_write(const char *path, const eva_st_write_item *items, int n,
                                 const char *const *metadata);
/* The same for files too large to hold: an item whose data is NULL gets its values from
 * fill(ctx, item, first, count, dst), asked for consecutive chunks (count <= 512); a nonzero
 * return stops the write (EVA_ERR_IO). */
typedef int (*eva_st_fill)(void *ctx, int item, int64_t first, int64_t count, float *dst);
eva_status eva_safetensors_write_stream(const char *path, const eva_st_write_item *items, int n,
                                        const char *const *metadata, eva_st_fill fill, void *ctx);

#endif
