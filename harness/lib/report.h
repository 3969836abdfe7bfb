/* report.h: verify's table as text (terminal), Markdown and JSON.
 *
 * Owns: formatting a list of eva_cmp_row (compare.h) plus the run's context. Does not own the
 * comparison or the decision (compare.h), nor reading files. The JSON record is described in
 * reports/README.md ("evabench-verify/1").
 */
#ifndef EVA_REPORT_H
#define EVA_REPORT_H

#include <stdio.h>

#include "compare.h"

typedef struct {
    const char *golden;     /* golden path */
    const char *weights;    /* weights path */
    const char *config;     /* config name */
    const char *config_source; /* "golden", "--variant", "--config" */
    const char *impl;       /* ref | cuda */
    const char *precision;  /* fp32 | ... */
    const char *device;     /* backend description */
    const char *generator;  /* golden's generator attribute (may be NULL) */
    const eva_cmp_row *rows;
    int n_rows;
    double seconds;         /* wall time of the forward passes */
} eva_verify_report;

/* Index of the first row (forward order) that counts against the run, or -1. */
int eva_report_first_failure(const eva_verify_report *r);
/* Counts of pass / FAIL / N/A rows. */
void eva_report_counts(const eva_verify_report *r, int *pass, int *fail, int *na);
/* Plain aligned table for the terminal (stdout). */
void eva_report_print_table(FILE *f, const eva_verify_report *r);
/* Markdown and JSON files; the message names the path on failure. */
eva_status eva_report_write_markdown(const eva_verify_report *r, const char *path);
eva_status eva_report_write_json(const eva_verify_report *r, const char *path);
/* "[2,197,768]" into buf. */
const char *eva_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

#endif
