/* check_main.c: runs the suite a test file builds (check_main.h) and turns the result into the
 * exit status ctest reads: 0 all passed, 1 a test failed, 77 skipped. */
#include <stdio.h>

#include "check_main.h"

int main(void) {
    eva_test_options opt = {0};
    Suite *s = eva_test_suite(&opt);
    if (!s) {
        if (opt.skip_reason) {
            printf("skipped: %s\n", opt.skip_reason);
            return 77;
        }
        printf("the suite could not be built\n");
        return 1;
    }
    SRunner *sr = srunner_create(s);
    if (opt.nofork) srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (opt.teardown) opt.teardown();
    return failed ? 1 : 0;
}
