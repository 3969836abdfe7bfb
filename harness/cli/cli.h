/* cli.h: the one option parser of every command, and the error-exit helper.
 *
 * A command describes its options in a table (eva_opt: name, kind, destination, metavar, help,
 * range) inside an eva_cli_spec, and eva_cli_parse() fills the destinations, answers --help with
 * the synopsis and a list generated from the same table, and refuses unknown options, missing
 * values, numbers out of range and stray arguments with one line naming the option (exit 2).
 * Only the CLI layer uses this (library code never prints or exits).
 *
 * Syntax: `--name VALUE` or `--name=VALUE`; a list option takes every following argument up to
 * the next `--option`; `--` ends the options (the rest is positional); the last of a repeated
 * option wins.
 */
#ifndef EVA_CLI_H
#define EVA_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "eva_status.h"

typedef enum {
    EVA_OPT_FLAG,   /* bool *: true when present */
    EVA_OPT_STR,    /* const char **: one value */
    EVA_OPT_LONG,   /* long *: one whole number in [lo, hi] */
    EVA_OPT_DOUBLE, /* double *: one finite number in [dlo, dhi] */
    EVA_OPT_LIST,   /* eva_cli_list *: the values up to the next option (at least one) */
} eva_opt_kind;

/* Arguments of a list option or the positional ones: pointers into argv. */
typedef struct {
    char **v;
    int n;
} eva_cli_list;

typedef struct {
    const char *name; /* "--weights"; NULL ends the table */
    eva_opt_kind kind;
    void *dest;
    const char *metavar; /* "W.safetensors"; NULL for a flag */
    const char *help;    /* one line for --help */
    long lo, hi;         /* EVA_OPT_LONG: accepted range */
    double dlo, dhi;     /* EVA_OPT_DOUBLE: accepted range */
} eva_opt;

/* Table entries (positional initialisers would leave fields unnamed). */
#define EVA_ARG_FLAG(name, dest, help) {name, EVA_OPT_FLAG, dest, NULL, help, 0, 0, 0, 0}
#define EVA_ARG_STR(name, dest, metavar, help) {name, EVA_OPT_STR, dest, metavar, help, 0, 0, 0, 0}
#define EVA_ARG_LONG(name, dest, metavar, help, lo, hi) {name, EVA_OPT_LONG, dest, metavar, help, lo, hi, 0, 0}
#define EVA_ARG_DOUBLE(name, dest, metavar, help, lo, hi) {name, EVA_OPT_DOUBLE, dest, metavar, help, 0, 0, lo, hi}
#define EVA_ARG_LIST(name, dest, metavar, help) {name, EVA_OPT_LIST, dest, metavar, help, 0, 0, 0, 0}
#define EVA_ARG_END {NULL, EVA_OPT_FLAG, NULL, NULL, NULL, 0, 0, 0, 0}

typedef struct {
    const char *cmd;             /* "encode" */
    const char *synopsis;        /* usage lines and description, printed above the options */
    const eva_opt *opts;         /* ends with an entry whose name is NULL */
    eva_cli_list *positional;    /* NULL: the command takes no positional argument */
    const char *epilog;          /* printed below the options; NULL: the exit-status paragraph */
} eva_cli_spec;

/* Parses argv[1..argc) against spec. Returns -1 when the command should run; otherwise the exit
 * code to return at once: 0 after printing --help, 2 after printing a usage error. */
int eva_cli_parse(const eva_cli_spec *spec, int argc, char **argv);

/* The --help text of spec on f. */
void eva_cli_help(const eva_cli_spec *spec, FILE *f);

/* Parses a whole decimal integer in [lo, hi]; false on anything else (empty, junk, range). */
bool eva_cli_parse_long(const char *s, long lo, long hi, long *out);

/* Prints "evabench <cmd>: <last error>" on stderr and returns the exit code of st
 * (3 when st is EVA_OK, which would be a bug at a failure site). */
int eva_cli_fail(const char *cmd, eva_status st);

/* Prints "evabench <cmd>: <message>" on stderr and returns 2 (a usage error). */
int eva_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
