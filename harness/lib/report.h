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
/* `evabench compare`: a candidate dump judged against a golden (tapcmp.h). */
typedef struct {
    const char *golden, *candidate; /* paths */
    const char *config;             /* the golden's config name */
    const char *precision;          /* the tolerance table used */
    const char *names;              /* the name scheme used for the candidate's datasets */
    const char *golden_by;          /* the golden's generator attribute (may be NULL) */
    const char *candidate_by;       /* the candidate's impl / generator attributes (may be NULL) */
    const eva_cmp_row *rows;        /* every golden tap in forward order (ABSENT when the candidate lacks it) */
    const char (*module)[EVA_TAP_NAME_MAX]; /* [n_rows] the candidate's dataset per row ("" when absent) */
    int n_rows;
    int first_fail;                 /* index into rows or -1 */
    const char (*extra)[EVA_TAP_NAME_MAX]; /* candidate taps the golden lacks */
    int n_extra;
} eva_compare_report;

/* The table of the taps compared, the list of absent and extra taps, the error from the first
 * failing tap on, and a summary line ("PASS: ..." or "FAIL: ... first failing tap: <tap>"). The
 * Markdown and JSON files hold every golden tap, absent ones included. */
void eva_compare_print(FILE *f, const eva_compare_report *r);
eva_status eva_compare_write_markdown(const eva_compare_report *r, const char *path);
/* JSON record "evabench-compare/1" (reports/README.md). */
eva_status eva_compare_write_json(const eva_compare_report *r, const char *path);

/* "[2,197,768]" into buf. */
const char *eva_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

#endif
