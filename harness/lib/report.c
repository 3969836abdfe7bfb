/* report.c: verify's table printed and written as Markdown and JSON (see report.h). */
#include "report.h"

#include "ref_gemm.h"

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
        case EVA_VERDICT_NA:
        case EVA_VERDICT_ABSENT: (*na)++; break;
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
    if (row->verdict == EVA_VERDICT_ABSENT) return "absent";
    return eva_verdict_name(row->verdict);
}

/* The table; rows with verdict ABSENT are left out when skip_absent (listed apart by compare). */
static void print_rows(FILE *f, const eva_cmp_row *rows, int n_rows, bool skip_absent) {
    int w = 4;
    for (int i = 0; i < n_rows; i++) {
        int l = (int)strlen(rows[i].name);
        if (l > w) w = l;
    }
    fprintf(f, "%-*s  %-16s  %10s  %10s  %12s  %7s  %s\n", w, "tap", "shape", "max abs", "max rel", "cosine",
            "budget", "verdict");
    for (int i = 0; i < n_rows; i++) {
        const eva_cmp_row *row = &rows[i];
        if (skip_absent && row->verdict == EVA_VERDICT_ABSENT) continue;
        char sh[64], a[32], b[32], c[32], d[32];
        fprintf(f, "%-*s  %-16s  %10s  %10s  %12s  %7s  %s\n", w, row->name,
                eva_shape_str(sh, sizeof sh, row->ndim, row->shape), num(a, sizeof a, row->max_abs, "%.3e"),
                num(b, sizeof b, row->max_rel, "%.3e"), num(c, sizeof c, row->cosine, "%.10f"),
                num(d, sizeof d, row->budget, "%.3f"), verdict_text(row));
    }
}

void eva_report_print_table(FILE *f, const eva_verify_report *r) { print_rows(f, r->rows, r->n_rows, false); }

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

/* The per-tap table and the notes of failing / N/A rows, as Markdown. */
static void md_rows(FILE *f, const eva_cmp_row *rows, int n_rows) {
    fprintf(f, "| tap | shape | max abs | max rel | cosine | budget | atol | rtol | cos floor | verdict |\n");
    fprintf(f, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int i = 0; i < n_rows; i++) {
        const eva_cmp_row *row = &rows[i];
        char sh[64], a[32], b[32], c[32], d[32];
        const char *em = row->verdict == EVA_VERDICT_PASS || row->verdict == EVA_VERDICT_ABSENT ? "" : "**";
        fprintf(f, "| `%s` | %s | %s | %s | %s | %s | %.3g | %.3g | %.6f | %s%s%s |\n", row->name,
                eva_shape_str(sh, sizeof sh, row->ndim, row->shape), num(a, sizeof a, row->max_abs, "%.3e"),
                num(b, sizeof b, row->max_rel, "%.3e"), num(c, sizeof c, row->cosine, "%.10f"),
                num(d, sizeof d, row->budget, "%.3f"), row->atol, row->rtol, row->cos_min, em, verdict_text(row), em);
    }
    int notes = 0;
    for (int i = 0; i < n_rows; i++)
        if (rows[i].note[0] && rows[i].verdict != EVA_VERDICT_ABSENT) {
            if (!notes++) fprintf(f, "\nNotes:\n\n");
            fprintf(f, "- `%s`: %s\n", rows[i].name, rows[i].note);
        }
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
    md_rows(f, r->rows, r->n_rows);
    return close_out(f, path);
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* Prints and frees root into path. */
static eva_status write_json(cJSON *root, const char *path) {
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

static cJSON *json_row(const eva_cmp_row *row) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", row->name);
    cJSON *sh = cJSON_AddArrayToObject(t, "shape");
    for (int k = 0; k < row->ndim; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)row->shape[k]));
    static const char *const verdicts[] = {"pass", "fail", "na", "absent"};
    cJSON_AddStringToObject(t, "verdict", verdicts[row->verdict]);
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
    return t;
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
    cJSON_AddStringToObject(build, "gemm_kernel", eva_gemm_kernel_name());
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
        cJSON *t = json_row(row);
        cJSON_AddItemToArray(taps, t);
    }
    return write_json(root, path);
}

/* ---- compare -------------------------------------------------------------------------------- */

static void compare_counts(const eva_compare_report *r, int *pass, int *fail, int *absent) {
    *pass = *fail = *absent = 0;
    for (int i = 0; i < r->n_rows; i++) {
        eva_verdict v = r->rows[i].verdict;
        if (v == EVA_VERDICT_PASS) (*pass)++;
        else if (v == EVA_VERDICT_ABSENT) (*absent)++;
        else (*fail)++;
    }
}

/* Compared rows from the first failing one on, with growth = max abs / max abs of the first. */
static void growth_rows(FILE *f, const eva_compare_report *r, bool md) {
    if (r->first_fail < 0) return;
    const eva_cmp_row *first = &r->rows[r->first_fail];
    double base = first->max_abs > 0 ? first->max_abs : NAN;
    fprintf(f, md ? "\n## Error from the first failing tap on\n\ngrowth = max abs / max abs at `%s`.\n\n"
                  : "\nerror from the first failing tap on (growth = max abs / max abs at %s):\n", first->name);
    if (md) fprintf(f, "| tap | max abs | max rel | cosine | growth | verdict |\n|---|---:|---:|---:|---:|---|\n");
    for (int i = r->first_fail; i < r->n_rows; i++) {
        const eva_cmp_row *row = &r->rows[i];
        if (row->verdict == EVA_VERDICT_ABSENT) continue;
        char a[32], b[32], c[32], g[32];
        num(a, sizeof a, row->max_abs, "%.3e");
        num(b, sizeof b, row->max_rel, "%.3e");
        num(c, sizeof c, row->cosine, "%.10f");
        num(g, sizeof g, row->max_abs / base, "%.3g");
        if (md) fprintf(f, "| `%s` | %s | %s | %s | %s | %s |\n", row->name, a, b, c, g, verdict_text(row));
        else fprintf(f, "  %-44s  max abs %10s  max rel %10s  cosine %12s  growth %8s  %s\n", row->name, a, b, c, g,
                     verdict_text(row));
    }
}

/* "absent from the candidate" and "not in the golden" lists. */
static void name_lists(FILE *f, const eva_compare_report *r, bool md) {
    int pass, fail, absent;
    compare_counts(r, &pass, &fail, &absent);
    if (absent) {
        fprintf(f, md ? "\n%d golden taps are absent from the candidate (not compared, not failures):" 
                      : "absent from the candidate (%d taps, not compared):", absent);
        for (int i = 0, k = 0; i < r->n_rows; i++)
            if (r->rows[i].verdict == EVA_VERDICT_ABSENT)
                fprintf(f, md ? "%s`%s`" : "%s%s", k++ ? ", " : " ", r->rows[i].name);
        fprintf(f, "\n");
    }
    if (r->n_extra) {
        fprintf(f, md ? "\n%d candidate taps are not in the golden (not compared):"
                      : "not in the golden (%d candidate taps, not compared):", r->n_extra);
        for (int i = 0; i < r->n_extra; i++) fprintf(f, md ? "%s`%s`" : "%s%s", i ? ", " : " ", r->extra[i]);
        fprintf(f, "\n");
    }
}

static void compare_summary(FILE *f, const eva_compare_report *r) {
    int pass, fail, absent;
    compare_counts(r, &pass, &fail, &absent);
    if (r->first_fail < 0)
        fprintf(f, "PASS: all %d taps in common within tolerance (%d absent from the candidate)\n", pass, absent);
    else
        fprintf(f, "FAIL: %d of %d taps in common fail; first failing tap: %s\n", fail, pass + fail,
                r->rows[r->first_fail].name);
}

void eva_compare_print(FILE *f, const eva_compare_report *r) {
    print_rows(f, r->rows, r->n_rows, true);
    name_lists(f, r, false);
    growth_rows(f, r, false);
    compare_summary(f, r);
}

eva_status eva_compare_write_markdown(const eva_compare_report *r, const char *path) {
    eva_status st = EVA_OK;
    FILE *f = open_out(path, &st);
    if (!f) return st;
    int pass, fail, absent;
    compare_counts(r, &pass, &fail, &absent);
    fprintf(f, "# evabench compare: %s\n\n| | |\n|---|---|\n", r->config ? r->config : "?");
    fprintf(f, "| golden | `%s` |\n| candidate | `%s` |\n", r->golden, r->candidate);
    if (r->golden_by) fprintf(f, "| golden made by | %s |\n", r->golden_by);
    if (r->candidate_by) fprintf(f, "| candidate made by | %s |\n", r->candidate_by);
    fprintf(f, "| tolerances | %s |\n| candidate names | %s |\n", r->precision, r->names);
    fprintf(f, "| build | evabench %s (%s) |\n", EVA_VERSION, EVA_GIT_REV);
    fprintf(f, "| result | **%s** (%d pass, %d FAIL, %d absent) |\n", r->first_fail < 0 ? "PASS" : "FAIL", pass, fail,
            absent);
    if (r->first_fail >= 0) fprintf(f, "| first failing tap | `%s` |\n", r->rows[r->first_fail].name);
    fprintf(f, "\nPass: every element |got-ref| <= atol + rtol*|ref|, cosine >= floor, no NaN/Inf "
               "(golden/README-tolerances.md). Budget: largest share of the per-element allowance used.\n\n");
    md_rows(f, r->rows, r->n_rows);
    name_lists(f, r, true);
    growth_rows(f, r, true);
    return close_out(f, path);
}

static void json_names(cJSON *root, const char *key, const eva_compare_report *r, bool extra) {
    cJSON *a = cJSON_AddArrayToObject(root, key);
    if (extra)
        for (int i = 0; i < r->n_extra; i++) cJSON_AddItemToArray(a, cJSON_CreateString(r->extra[i]));
    else
        for (int i = 0; i < r->n_rows; i++)
            if (r->rows[i].verdict == EVA_VERDICT_ABSENT) cJSON_AddItemToArray(a, cJSON_CreateString(r->rows[i].name));
}

eva_status eva_compare_write_json(const eva_compare_report *r, const char *path) {
    int pass, fail, absent;
    compare_counts(r, &pass, &fail, &absent);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "evabench-compare/1");
    cJSON_AddStringToObject(root, "golden", r->golden);
    cJSON_AddStringToObject(root, "candidate", r->candidate);
    cJSON_AddStringToObject(root, "config", r->config ? r->config : "");
    cJSON_AddStringToObject(root, "precision", r->precision);
    cJSON_AddStringToObject(root, "names", r->names);
    if (r->golden_by) cJSON_AddStringToObject(root, "golden_generator", r->golden_by);
    if (r->candidate_by) cJSON_AddStringToObject(root, "candidate_generator", r->candidate_by);
    cJSON *build = cJSON_AddObjectToObject(root, "build");
    cJSON_AddStringToObject(build, "version", EVA_VERSION);
    cJSON_AddStringToObject(build, "git_rev", EVA_GIT_REV);
    cJSON_AddStringToObject(root, "result", r->first_fail < 0 ? "pass" : "fail");
    if (r->first_fail >= 0) cJSON_AddStringToObject(root, "first_failure", r->rows[r->first_fail].name);
    else cJSON_AddNullToObject(root, "first_failure");
    cJSON *counts = cJSON_AddObjectToObject(root, "counts");
    cJSON_AddNumberToObject(counts, "pass", pass);
    cJSON_AddNumberToObject(counts, "fail", fail);
    cJSON_AddNumberToObject(counts, "absent", absent);
    json_names(root, "absent", r, false);
    json_names(root, "not_in_golden", r, true);
    cJSON *taps = cJSON_AddArrayToObject(root, "taps");
    for (int i = 0; i < r->n_rows; i++) {
        cJSON *t = json_row(&r->rows[i]);
        if (r->module && r->module[i][0] && strcmp(r->module[i], r->rows[i].name) != 0)
            cJSON_AddStringToObject(t, "candidate_name", r->module[i]);
        cJSON_AddItemToArray(taps, t);
    }
    return write_json(root, path);
}
