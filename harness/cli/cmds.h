/* cmds.h: the subcommands of the evabench CLI. Each lives in cmd_<name>.c and returns
 * the process exit code (0 ok, 1 check failed, 2 bad input/usage, 3 internal), having printed
 * its own messages. main.c only dispatches. */
#ifndef EVA_CMDS_H
#define EVA_CMDS_H

int eva_cmd_info(int argc, char **argv);
int eva_cmd_encode(int argc, char **argv);
int eva_cmd_verify(int argc, char **argv);
int eva_cmd_compare(int argc, char **argv);
int eva_cmd_tokenize(int argc, char **argv);
int eva_cmd_preprocess(int argc, char **argv);
int eva_cmd_bench(int argc, char **argv);
int eva_cmd_profile(int argc, char **argv);
int eva_cmd_zeroshot(int argc, char **argv);
int eva_cmd_classify(int argc, char **argv);
int eva_cmd_retrieval(int argc, char **argv);

#endif
