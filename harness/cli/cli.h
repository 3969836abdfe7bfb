/* cli.h: small option-parsing and error-exit helpers shared by the cmd_*.c files.
 * Only the CLI layer uses these (library code never prints or exits). */
#ifndef EVA_CLI_H
#define EVA_CLI_H

#include <stdbool.h>

#include "eva_status.h"

/* Matches argv[*i] against `--name VALUE` or `--name=VALUE`. Returns 1 matched (*out = value,
 * *i advanced past a separate value), 0 not this option, -1 the option lacks its value. */
int eva_cli_opt_value(int argc, char **argv, int *i, const char *name, const char **out);

/* Parses a whole decimal integer in [lo, hi]; false on anything else (empty, junk, range). */
bool eva_cli_parse_long(const char *s, long lo, long hi, long *out);

/* Prints "evabench <cmd>: <last error>" on stderr and returns the exit code of st
 * (3 when st is EVA_OK, which would be a bug at a failure site). */
int eva_cli_fail(const char *cmd, eva_status st);

#endif
