/* report.c: verify's table printed and written as Markdown and JSON (see report.h). */
#include "report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *eva_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

int eva_report_first_failure(const eva_verify_report *r) {
    for (int i = 0; i < r->n_rows; i++)
        if (eva_cmp_row_fails(&r->rows[i])) return i;
    return -1;
}

void eva_report_counts(const eva_verify_report *r, int *pass, int *fail, int *na) {
    *pass = *fail = *na = 0;
    for (int i = 0; i < r->n_rows; i++) {
        switch (r->rows[i].verdict) {
        case EVA_VERDICT_PASS: (*pass)++; break;
        case EVA_VERDICT_FAIL: (*fail)++; break;
        case EVA_VERDICT_NA: (*na)++; break;
        }
    }
}

static const char *num(char *buf, size_t cap, double v, const char *fmt) {
    if (isnan(v)) snprintf(buf, cap, "-");
    else snprintf(buf, cap, fmt, v);
    return buf;
}

static const char *verdict_text(const eva_cmp_row *row) {
    if (row->verdict == EVA_VERDICT_NA) return row->optional ? "N/A (optional)" : "N/A";
    return eva_verdict_name(row->verdict);
}

void eva_report_print_table(FILE *f, const eva_verify_report *r) {
    int w = 4;
    for (int i = 0; i < r->n_rows; i++) {
        int l = (int)strlen(r->rows[i].name);
        if (l > w) w = l;
    }
    fprintf(f, "%-*s  %-16s  %10s  %10s  %12s  %7s  %s\n", w, "tap", "shape", "max abs", "max rel", "cosine",
            "budget", "verdict");
    for (int i = 0; i < r->n_rows; i++) {
        const eva_cmp_row *row = &r->rows[i];
        char sh[64], a[32], b[32], c[32], d[32];
        fprintf(f, "%-*s  %-16s  %10s  %10s  %12s  %7s  %s\n", w, row->name,
                eva_shape_str(sh, sizeof sh, row->ndim, row->shape), num(a, sizeof a, row->max_abs, "%.3e"),
                num(b, sizeof b, row->max_rel, "%.3e"), num(c, sizeof c, row->cosine, "%.10f"),
                num(d, sizeof d, row->budget, "%.3f"), verdict_text(row));
    }
}

static FILE *open_out(const char *path, eva_status *st) {
    FILE *f = fopen(path, "w");
    if (!f) *st = eva_fail(EVA_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return f;
}

static eva_status close_out(FILE *f, const char *path) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return eva_fail(EVA_ERR_IO, "%s: write failed", path);
    return EVA_OK;
}

eva_status eva_report_write_markdown(const eva_verify_report *r, const char *path) {
    eva_status st = EVA_OK;
    FILE *f = open_out(path, &st);
    if (!f) return st;
    int pass, fail, na;
    eva_report_counts(r, &pass, &fail, &na);
    int first = eva_report_first_failure(r);
    fprintf(f, "# evabench verify: %s\n\n", r->config ? r->config : "?");
    fprintf(f, "| | |\n|---|---|\n");
    fprintf(f, "| golden | `%s` |\n| weights | `%s` |\n| config | %s (from %s) |\n", r->golden, r->weights,
            r->config, r->config_source);
    fprintf(f, "| implementation | %s, %s |\n| device | %s |\n", r->impl, r->precision, r->device ? r->device : "");
    if (r->generator) fprintf(f, "| golden generator | %s |\n", r->generator);
    fprintf(f, "| build | evabench %s (%s) |\n", EVA_VERSION, EVA_GIT_REV);
    fprintf(f, "| result | **%s** (%d pass, %d FAIL, %d N/A) |\n", first < 0 ? "PASS" : "FAIL", pass, fail, na);
    if (first >= 0) fprintf(f, "| first failing tap | `%s` |\n", r->rows[first].name);
    fprintf(f, "| forward time | %.3f s |\n\n", r->seconds);
    fprintf(f, "Pass: every element |got-ref| <= atol + rtol*|ref|, cosine >= floor, no NaN/Inf "
               "(golden/README-tolerances.md). Budget: largest share of the per-element allowance used.\n\n");
    fprintf(f, "| tap | shape | max abs | max rel | cosine | budget | atol | rtol | cos floor | verdict |\n");
    fprintf(f, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int i = 0; i < r->n_rows; i++) {
        const eva_cmp_row *row = &r->rows[i];
        char sh[64], a[32], b[32], c[32], d[32];
        const char *em = row->verdict == EVA_VERDICT_PASS ? "" : "**";
        fprintf(f, "| `%s` | %s | %s | %s | %s | %s | %.3g | %.3g | %.6f | %s%s%s |\n", row->name,
                eva_shape_str(sh, sizeof sh, row->ndim, row->shape), num(a, sizeof a, row->max_abs, "%.3e"),
                num(b, sizeof b, row->max_rel, "%.3e"), num(c, sizeof c, row->cosine, "%.10f"),
                num(d, sizeof d, row->budget, "%.3f"), row->atol, row->rtol, row->cos_min, em, verdict_text(row), em);
    }
    int notes = 0;
    for (int i = 0; i < r->n_rows; i++)
        if (r->rows[i].note[0]) {
            if (!notes++) fprintf(f, "\nNotes:\n\n");
            fprintf(f, "- `%s`: %s\n", r->rows[i].name, r->rows[i].note);
        }
    return close_out(f, path);
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

eva_status eva_report_write_json(const eva_verify_report *r, const char *path) {
    int pass, fail, na;
    eva_report_counts(r, &pass, &fail, &na);
    int first = eva_report_first_failure(r);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "evabench-verify/1");
    cJSON_AddStringToObject(root, "golden", r->golden ? r->golden : "");
    cJSON_AddStringToObject(root, "weights", r->weights ? r->weights : "");
    cJSON_AddStringToObject(root, "config", r->config ? r->config : "");
    cJSON_AddStringToObject(root, "config_source", r->config_source ? r->config_source : "");
    cJSON_AddStringToObject(root, "impl", r->impl);
    cJSON_AddStringToObject(root, "precision", r->precision);
    cJSON_AddStringToObject(root, "device", r->device ? r->device : "");
    if (r->generator) cJSON_AddStringToObject(root, "golden_generator", r->generator);
    cJSON *build = cJSON_AddObjectToObject(root, "build");
    cJSON_AddStringToObject(build, "version", EVA_VERSION);
    cJSON_AddStringToObject(build, "git_rev", EVA_GIT_REV);
    cJSON_AddStringToObject(build, "flags", EVA_BUILD_FLAGS);
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(root, "time_utc", when);
    cJSON_AddStringToObject(root, "result", first < 0 ? "pass" : "fail");
    if (first >= 0) cJSON_AddStringToObject(root, "first_failure", r->rows[first].name);
    else cJSON_AddNullToObject(root, "first_failure");
    cJSON *counts = cJSON_AddObjectToObject(root, "counts");
    cJSON_AddNumberToObject(counts, "pass", pass);
    cJSON_AddNumberToObject(counts, "fail", fail);
    cJSON_AddNumberToObject(counts, "na", na);
    add_num(root, "forward_seconds", r->seconds);
    cJSON *taps = cJSON_AddArrayToObject(root, "taps");
    for (int i = 0; i < r->n_rows; i++) {
        const eva_cmp_row *row = &r->rows[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", row->name);
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int k = 0; k < row->ndim; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)row->shape[k]));
        cJSON_AddStringToObject(t, "verdict", row->verdict == EVA_VERDICT_PASS ? "pass"
                                              : row->verdict == EVA_VERDICT_FAIL ? "fail" : "na");
        cJSON_AddBoolToObject(t, "optional", row->optional);
        add_num(t, "max_abs", row->max_abs);
        add_num(t, "max_rel", row->max_rel);
        add_num(t, "cosine", row->cosine);
        add_num(t, "budget", row->budget);
        add_num(t, "atol", row->atol);
        add_num(t, "rtol", row->rtol);
        add_num(t, "cos_min", row->cos_min);
        cJSON_AddNumberToObject(t, "elements_over", (double)row->over);
        cJSON_AddNumberToObject(t, "nonfinite", (double)(row->nonfinite_got + row->nonfinite_ref));
        if (row->worst >= 0) cJSON_AddNumberToObject(t, "worst_index", (double)row->worst);
        if (row->note[0]) cJSON_AddStringToObject(t, "note", row->note);
        cJSON_AddItemToArray(taps, t);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return eva_fail(EVA_ERR_NOMEM, "%s: out of memory formatting JSON", path);
    eva_status st = EVA_OK;
    FILE *f = open_out(path, &st);
    if (f) {
        fputs(text, f);
        fputc('\n', f);
        st = close_out(f, path);
    }
    free(text);
    return st;
}
