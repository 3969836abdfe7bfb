/* compare.h: the one tolerance table and the per-tap comparison.
 *
 * Owns: the table keyed by (precision, tap pattern) that golden/embed/tolerances.json holds
 * (compiled into the binary; golden/README-tolerances.md gives the reasoning), and the comparison
 * of one tap: max abs error, max rel error, cosine, share of the budget used, NaN/Inf check,
 * verdict. Does not own reading the data (golden.h) or printing (report.h).
 *
 * A tap passes iff
 *   - no element of either tensor is NaN or Inf,
 *   - every element satisfies |got - ref| <= atol_eff + rtol_eff * |ref|, where
 *       atol_eff = (atol + atol_rms * rms(ref)) * g,  rtol_eff = rtol * g,
 *       g = 1 + depth_growth * k,  k = the number of blocks the tap comes after (eva_tap_depth),
 *   - the cosine (the minimum over batch items of the cosine of that item's values) >= cos_min.
 * atol_rms lets the absolute floor follow the tensor's scale: an element near zero that came out
 * of a cancelling sum carries an error proportional to the size of the terms, which rms(ref)
 * measures. "budget" is the largest |got - ref| / (atol_eff + rtol_eff*|ref|) over elements:
 * 1.0 means the budget is exactly used up.
 * Rows are matched in file order with fnmatch(3) globs; the last row of every precision is "*".
 */
#ifndef EVA_COMPARE_H
#define EVA_COMPARE_H

#include <stdbool.h>
#include <stdint.h>

#include "eva_config.h"
#include "eva_status.h"
#include "eva_tap.h"

typedef struct {
    char pattern[EVA_TAP_NAME_MAX];
    double atol, rtol, atol_rms, cos_min, depth_growth;
    bool optional;      /* a tap the implementation may lack: N/A does not fail the run */
} eva_tol_rule;

typedef struct {
    char precision[16];
    eva_tol_rule *rules;
    int n;
} eva_tol_table;

/* Parses the rows of `precision` (fp32, tf32, bf16 or fp16) from a tolerance JSON document. */
eva_status eva_tol_parse(eva_tol_table *t, const char *json, const char *source, const char *precision);
/* The built-in table (golden/embed/tolerances.json, compiled in). */
eva_status eva_tol_default(eva_tol_table *t, const char *precision);
/* The built-in rows for judging a run of `precision` against a golden computed in
 * `golden_dtype` (its compute_dtype attribute: "float64", the default when NULL, or "float32"):
 * the "<precision>+golden32" rows when the golden is float32 and the table has them (fp32),
 * else the precision's own rows. */
eva_status eva_tol_for_golden(eva_tol_table *t, const char *precision, const char *golden_dtype);
/* First rule whose pattern matches `tap` (never NULL for a parsed table: the last row is "*"). */
const eva_tol_rule *eva_tol_match(const eva_tol_table *t, const char *tap);
void eva_tol_free(eva_tol_table *t);

/* Number of transformer blocks a tap comes after: i+1 inside block i, the tower depth for what
 * follows the tower (final norm, head, features, embeds), the larger depth for logits, else 0. */
int eva_tap_depth(const eva_config *cfg, const char *tap);

/* ABSENT: a tap the golden holds and a compared dump lacks (compare only; never fails the run). */
typedef enum { EVA_VERDICT_PASS = 0, EVA_VERDICT_FAIL = 1, EVA_VERDICT_NA = 2, EVA_VERDICT_ABSENT = 3 } eva_verdict;

typedef struct {
    char name[EVA_TAP_NAME_MAX];
    int ndim;
    int64_t shape[4];
    eva_verdict verdict;
    bool optional;          /* from the rule: N/A of an optional tap does not fail the run */
    double max_abs;         /* max |got - ref| */
    double max_rel;         /* max |got - ref| / max(|ref|, 1e-3 * rms(ref)) */
    double cosine;          /* min over batch items */
    double budget;          /* max |got - ref| / (atol_eff + rtol_eff * |ref|) */
    int64_t worst;          /* flat index of the element using the most budget (-1 if none) */
    int64_t over;           /* elements over budget */
    int64_t nonfinite_got, nonfinite_ref;
    double atol, rtol, cos_min; /* effective tolerances */
    char note[192];         /* why it failed or is N/A; empty on pass */
} eva_cmp_row;

/* Compares got against ref (both float32, `shape` of rank ndim, batch first) under `rule` with
 * depth k (eva_tap_depth). Fills every field of row. */
void eva_compare(eva_cmp_row *row, const char *name, const float *got, const float *ref, int ndim,
                 const int64_t *shape, const eva_tol_rule *rule, int depth);
/* A row for a tap the implementation did not produce. */
void eva_compare_na(eva_cmp_row *row, const char *name, int ndim, const int64_t *shape, const eva_tol_rule *rule,
                    const char *why);
/* Whether a row counts against the run: FAIL, or N/A of a non-optional tap. */
static inline bool eva_cmp_row_fails(const eva_cmp_row *r) {
    return r->verdict == EVA_VERDICT_FAIL || (r->verdict == EVA_VERDICT_NA && !r->optional);
}
const char *eva_verdict_name(eva_verdict v);

#endif
