/* check_main.h: the one `main` of every Check suite (check_main.c).
 *
 * A suite file defines eva_test_suite(): it builds its Suite and sets what the runner needs to
 * know in *opt. Returning NULL with opt->skip_reason set reports the suite skipped (exit 77,
 * ctest's skip code: a GPU suite without a device); NULL without a reason is a failure.
 */
#ifndef EVA_CHECK_MAIN_H
#define EVA_CHECK_MAIN_H

#include <check.h>
#include <stdbool.h>

typedef struct {
    bool nofork;              /* run in-process (CUDA does not survive fork; shared fixtures) */
    const char *skip_reason;  /* with a NULL suite: why it is skipped */
    void (*teardown)(void);   /* optional: run after the suite (frees suite-wide fixtures) */
} eva_test_options;

Suite *eva_test_suite(eva_test_options *opt);

#endif
