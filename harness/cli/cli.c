/* cli.c: the table-driven option parser (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const default_epilog =
    "Exit status: 0 success, 1 a verification or parity check failed, 2 bad usage or bad input (the\n"
    "message names the file, tensor or option), 3 internal failure.\n";

bool eva_cli_parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    if (!s || !*s) return false;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    if (!s || !*s) return false;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return false;
    *out = v;
    return true;
}

int eva_cli_fail(const char *cmd, eva_status st) {
    fprintf(stderr, "evabench %s: %s\n", cmd, eva_last_error());
    int code = eva_status_exit_code(st);
    return code == 0 ? 3 : code;
}

int eva_cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "evabench %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

void eva_cli_help(const eva_cli_spec *spec, FILE *f) {
    fputs(spec->synopsis, f);
    fputs("\noptions:\n", f);
    for (const eva_opt *o = spec->opts; o->name; o++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "",
                 o->kind == EVA_OPT_LIST ? "..." : "");
        fprintf(f, "  %-24s %s\n", head, o->help);
    }
    fprintf(f, "  %-24s %s\n\n", "--help", "this text");
    fputs(spec->epilog ? spec->epilog : default_epilog, f);
}

static const eva_opt *find_opt(const eva_cli_spec *spec, const char *arg, const char **inline_value) {
    *inline_value = NULL;
    for (const eva_opt *o = spec->opts; o->name; o++) {
        size_t n = strlen(o->name);
        if (strncmp(arg, o->name, n) != 0) continue;
        if (arg[n] == '\0') return o;
        if (arg[n] == '=' && o->kind != EVA_OPT_FLAG) {
            *inline_value = arg + n + 1;
            return o;
        }
    }
    return NULL;
}

/* One option whose value is `v`; returns -1 ok or 2 after printing the error. */
static int store_value(const eva_cli_spec *spec, const eva_opt *o, const char *v) {
    switch (o->kind) {
    case EVA_OPT_STR:
        *(const char **)o->dest = v;
        return -1;
    case EVA_OPT_LONG:
        if (!eva_cli_parse_long(v, o->lo, o->hi, (long *)o->dest))
            return eva_cli_usage_error(spec->cmd, "%s '%s': expected a whole number in [%ld, %ld]", o->name, v, o->lo,
                                       o->hi);
        return -1;
    case EVA_OPT_DOUBLE:
        if (!parse_double(v, o->dlo, o->dhi, (double *)o->dest))
            return eva_cli_usage_error(spec->cmd, "%s '%s': expected a number in [%g, %g]", o->name, v, o->dlo, o->dhi);
        return -1;
    default:
        return eva_cli_usage_error(spec->cmd, "%s: internal error in the option table", o->name);
    }
}

/* A list option at argv[*i]: takes argv[*i+1 ..] up to the next "--option". */
static int store_list(const eva_cli_spec *spec, const eva_opt *o, int argc, char **argv, int *i) {
    eva_cli_list *l = o->dest;
    int first = *i + 1, k = first;
    while (k < argc && strncmp(argv[k], "--", 2) != 0) k++;
    if (k == first) return eva_cli_usage_error(spec->cmd, "option %s needs at least one value (see --help)", o->name);
    l->v = argv + first;
    l->n = k - first;
    *i = k - 1;
    return -1;
}

/* Positional arguments are gathered into one array per process (reachable until exit; a
 * command parses once). */
static char **positional_store;

static int store_positional(const eva_cli_spec *spec, char *arg) {
    if (!spec->positional) return eva_cli_usage_error(spec->cmd, "unexpected argument '%s' (see --help)", arg);
    spec->positional->v[spec->positional->n++] = arg;
    return -1;
}

int eva_cli_parse(const eva_cli_spec *spec, int argc, char **argv) {
    if (spec->positional) {
        free(positional_store);
        positional_store = calloc((size_t)argc + 1, sizeof *positional_store);
        if (!positional_store) return eva_cli_usage_error(spec->cmd, "out of memory parsing the arguments");
        spec->positional->v = positional_store;
        spec->positional->n = 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *inline_value;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            eva_cli_help(spec, stdout);
            return 0;
        }
        int r = -1;
        if (!strcmp(a, "--")) {
            for (int k = i + 1; k < argc && r < 0; k++) r = store_positional(spec, argv[k]);
            return r;
        }
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            if ((r = store_positional(spec, argv[i])) >= 0) return r;
            continue;
        }
        const eva_opt *o = find_opt(spec, a, &inline_value);
        if (!o) return eva_cli_usage_error(spec->cmd, "unknown option '%s' (see --help)", a);
        if (o->kind == EVA_OPT_FLAG)
            *(bool *)o->dest = true;
        else if (o->kind == EVA_OPT_LIST && !inline_value)
            r = store_list(spec, o, argc, argv, &i);
        else if (inline_value)
            r = store_value(spec, o, inline_value);
        else if (i + 1 >= argc)
            r = eva_cli_usage_error(spec->cmd, "option %s needs a value (see --help)", o->name);
        else
            r = store_value(spec, o, argv[++i]);
        if (r >= 0) return r;
    }
    return -1;
}
