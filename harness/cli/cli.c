/* cli.c: see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int eva_cli_opt_value(int argc, char **argv, int *i, const char *name, const char **out) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return 0;
    if (argv[*i][n] == '=') {
        *out = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0') return 0;
    if (*i + 1 >= argc) return -1;
    *out = argv[++*i];
    return 1;
}

bool eva_cli_parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    if (!s || !*s) return false;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

int eva_cli_fail(const char *cmd, eva_status st) {
    fprintf(stderr, "evabench %s: %s\n", cmd, eva_last_error());
    int code = eva_status_exit_code(st);
    return code == 0 ? 3 : code;
}
