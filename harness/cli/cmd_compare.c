/* cmd_compare.c: `evabench compare`: judges any implementation's tap dump (the golden layout:
 * /acts/<tap> float16/32/64, any subset of taps, names of evabench/open_clip, official EVA-CLIP or
 * transformers modules) against a golden with the tolerance table, in forward order; names the
 * first failing tap and shows the error from there on (tapcmp.h has the name map and the rules).
 *
 * Decisions:
 * - The config is the golden's `config` attribute; the tolerance table is --precision, else the
 *   candidate's `precision` attribute when it names a table, else fp32.
 * - A golden tap the candidate lacks is "absent": listed, not compared, not a failure. A dump
 *   with any subset of taps passes when every tap in common passes and at least one is in common.
 * - Exit 0 every tap in common passes; 1 a tap fails; 2 bad usage or input (unknown or mis-shaped
 *   tap, no tap in common, other inputs, a file that is not HDF5, ...); 3 internal failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmds.h"
#include "compare.h"
#include "golden.h"
#include "report.h"
#include "tapcmp.h"

typedef struct {
    const char *golden, *candidate, *precision, *json, *report, *names;
} compare_args;

static int parse(compare_args *a, int argc, char **argv) {
    *a = (compare_args){.names = "auto"};
    const eva_opt opts[] = {
        EVA_ARG_STR("--golden", &a->golden, "G.h5", "golden HDF5 (schema evabench-golden/1)"),
        EVA_ARG_STR("--candidate", &a->candidate, "C.h5", "the dump to judge: /acts/<tap> datasets (golden layout)"),
        EVA_ARG_STR("--precision", &a->precision, "P", "tolerance table fp32, tf32, bf16 or fp16 (default: the "
                                                       "candidate's precision attribute, else fp32)"),
        EVA_ARG_STR("--names", &a->names, "SCHEME", "the candidate's dataset names: open_clip, official, "
                                                    "transformers or auto (default)"),
        EVA_ARG_STR("--json", &a->json, "OUT.json", "write the result as JSON (reports/README.md)"),
        EVA_ARG_STR("--report", &a->report, "OUT.md", "write the result as Markdown"),
        EVA_ARG_END,
    };
    const eva_cli_spec spec = {
        "compare",
        "usage: evabench compare --golden G.h5 --candidate C.h5 [--precision P] [--names SCHEME]\n"
        "                        [--json OUT.json] [--report OUT.md]\n\n"
        "Compares every tap the candidate and the golden both hold with the tolerance table (golden/README-\n"
        "tolerances.md), in forward order: one row per tap compared (shape, max abs error, max rel error, cosine,\n"
        "budget used, verdict), the golden taps the candidate lacks (\"absent\": listed, not failed), then the\n"
        "error from the first failing tap on. The candidate is any implementation's dump in the golden layout\n"
        "(/acts/<tap>, float16, float32 or float64, batch first, any subset of taps; /inputs, when present, must\n"
        "be the golden's).\n"
        "Datasets named after official EVA-CLIP modules (visual.blocks.3.attn) or transformers modules\n"
        "(vision_model.encoder.layers.3.self_attn) are mapped to the tap names (--names; the map is in\n"
        "docs/formats.md). A dump passes when every tap in common passes.\n",
        opts, NULL,
        "Exit status: 0 every tap in common passes, 1 a tap fails, 2 bad usage or input (unknown or mis-shaped\n"
        "tap, no tap in common, other inputs, not an HDF5 file, ...), 3 internal failure.\n"};
    int r = eva_cli_parse(&spec, argc, argv);
    if (r < 0 && !a->golden) r = eva_cli_usage_error("compare", "--golden G.h5 is required (see --help)");
    if (r < 0 && !a->candidate) r = eva_cli_usage_error("compare", "--candidate C.h5 is required (see --help)");
    return r;
}

/* Everything one compare run holds; compare_free() releases it all. */
typedef struct {
    eva_golden g, c;
    bool g_open, c_open;
    eva_config cfg;
    eva_names names;
    char precision[16];
    char made_by[1024];
    const char *candidate_by;
    eva_tol_table tol;
    eva_dumpcmp r;
} compare_run;

static void compare_free(compare_run *r) {
    eva_dumpcmp_free(&r->r);
    eva_tol_free(&r->tol);
    if (r->c_open) eva_golden_close(&r->c);
    if (r->g_open) eva_golden_close(&r->g);
}

/* Both files, the config, the tolerance table and the comparison itself. */
static eva_status compare_prepare(compare_run *r, const compare_args *a) {
    eva_status st = eva_names_parse(&r->names, a->names);
    if (st == EVA_OK && (st = eva_golden_open(&r->g, a->golden)) == EVA_OK) r->g_open = true;
    if (st != EVA_OK) return st;
    if (!r->g.config_json)
        return eva_fail(EVA_ERR_FORMAT, "%s: has no 'config' attribute (the golden's model config JSON)", a->golden);
    char src[1100];
    snprintf(src, sizeof src, "%s (config attribute)", a->golden);
    if ((st = eva_config_from_json(&r->cfg, r->g.config_json, src)) != EVA_OK) return st;
    if ((st = eva_dump_open(&r->c, a->candidate)) != EVA_OK) return st;
    r->c_open = true;
    if (a->precision) snprintf(r->precision, sizeof r->precision, "%s", a->precision);
    else eva_dump_precision(&r->c, r->precision, sizeof r->precision);
    if (a->precision && strlen(a->precision) >= sizeof r->precision)
        return eva_fail(EVA_ERR_INVALID_ARG, "--precision '%.32s': expected fp32, tf32, bf16 or fp16", a->precision);
    /* a golden computed in float32 (compute_dtype attribute) is judged with its own fp32 rows */
    if ((st = eva_tol_for_golden(&r->tol, r->precision, r->g.compute_dtype)) != EVA_OK) return st;
    r->candidate_by = eva_dump_made_by(&r->c, r->made_by, sizeof r->made_by);
    return eva_dumpcmp_run(&r->r, &r->g, &r->c, &r->cfg, &r->tol, r->names);
}

static int compare_report(compare_run *r, const compare_args *a) {
    const eva_dumpcmp *d = &r->r;
    const eva_compare_report rep = {a->golden, a->candidate, r->cfg.name, r->precision, eva_names_name(d->names),
                                    r->g.generator, r->candidate_by, d->rows,
                                    (const char(*)[EVA_TAP_NAME_MAX])d->module, d->n_rows, d->first_fail,
                                    (const char(*)[EVA_TAP_NAME_MAX])d->extra, d->n_extra};
    printf("evabench compare: %s against %s (config %s, %lld images, %lld texts; %s tolerances, names %s)\n",
           a->candidate, a->golden, r->cfg.name, (long long)d->images, (long long)d->texts, r->precision,
           eva_names_name(d->names));
    eva_compare_print(stdout, &rep);
    fflush(stdout);
    eva_status st = EVA_OK;
    if (a->report) st = eva_compare_write_markdown(&rep, a->report);
    if (st == EVA_OK && a->json) st = eva_compare_write_json(&rep, a->json);
    if (st != EVA_OK) return eva_cli_fail("compare", st);
    if (d->first_fail < 0) return 0;
    const eva_cmp_row *row = &d->rows[d->first_fail];
    fprintf(stderr, "evabench compare: %s: tap %s fails: %s\n", a->candidate, row->name, row->note);
    return 1;
}

int eva_cmd_compare(int argc, char **argv) {
    compare_args a;
    int code = parse(&a, argc, argv);
    if (code >= 0) return code;
    compare_run r;
    memset(&r, 0, sizeof r);
    r.r.first_fail = -1;
    eva_status st = compare_prepare(&r, &a);
    code = st == EVA_OK ? compare_report(&r, &a) : eva_cli_fail("compare", st);
    compare_free(&r);
    return code;
}
