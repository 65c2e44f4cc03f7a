/* cmd_simulate.c - `earlystop simulate`: the online controller in the loop of
 * a stream of requests replayed from trace files, with scheduled shifts,
 * beside a static threshold tuned on the first segment, the best static
 * threshold in hindsight and the anchors' defaults.  The work is
 * es_simulate's (src/online); this file parses, loads, prints, and draws
 * (sim_plot.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "earlystop_io.h"
#include "earlystop_online.h"
#include "sim_out.h"

enum { MAX_FILES = 64 };

typedef struct sim_cli {
    const char *stream, *policy, *target, *plot, *state_in, *state_out, *candidates;
    long window, seed, batch, labels, probe_cost;
    double kv_bytes, audit_share;
    int json, progress;
} sim_cli;

static void sim_help(void)
{
    printf("usage: earlystop simulate --stream FILE:N[,FILE:N|FILE+FILE:N]... --policy SPEC\n"
           "                          --target tokens=B|kv=BYTES|em-loss=PTS [--window W] [--seed S]\n"
           "                          [--json] [--plot s.svg] [options]\n\n"
           "Replay a stream of requests drawn from trace files, with shifts where the\n"
           "segments change, and the online controller moving the policy's threshold to\n"
           "hold the target: mean tokens per request (probes and audits included), mean\n"
           "peak KV-cache bytes per request, or the rate at which the answer differs from\n"
           "the full run's (points of EM).  Items are drawn with replacement, a mix\n"
           "A+B draws a file uniformly then an item; samples come in random order.\n"
           "Audits (requests run on to the full run) are paid in tokens.  Beside it the\n"
           "same requests with the threshold tuned on the first segment, the best static\n"
           "threshold in hindsight, and the anchors' defaults (ac-beta, esc).\n\n"
           "  --stream SPEC       segments, e.g. a.jsonl:2000,b.jsonl:2000,a.jsonl+b.jsonl:2000\n"
           "  --policy SPEC       the policy whose swept parameter moves (ac-beta, majority,\n"
           "                      entropy, margin, ac-dirichlet; with clinch=on audits are cheaper)\n"
           "  --target T          tokens=B | kv=BYTES (K, M, G suffixes) | em-loss=PTS\n"
           "  --window W          requests per window, and the recovery allowed (default 200)\n"
           "  --seed S            draws of items, orders and audits (default 1)\n"
           "  --batch B           samples drawn at once per round (default 1)\n"
           "  --kv-bytes N        bytes one KV position holds (default 1: kv counts positions)\n"
           "  --candidates LIST   values of the parameter, comma-separated (default: 16 from\n"
           "                      its range, conservative to aggressive)\n"
           "  --audit-share F     tokens share audits may spend once settled (default 0.03\n"
           "                      for em-loss, 0.01 otherwise; at most 0.05)\n"
           "  --labels DELAY      gold labels reach the controller DELAY requests late\n"
           "  --probe-cost N      tokens per probe (default: each probe's cost field)\n"
           "  --state-in FILE     start from a saved controller state\n"
           "  --state-out FILE    save the controller's state at the end\n"
           "  --json              per window and summary as JSON on stdout\n"
           "  --plot FILE         an SVG of the windows (target measure and threshold)\n"
           "  --progress          progress on stderr even when it is not a terminal\n\n"
           "A window meets a tokens or kv target when its mean is within the budget, an\n"
           "em-loss target when its disagreement is not significantly above the bound\n"
           "(the lower end of its 95%% interval).  recovery_requests: per shift, the\n"
           "requests until every later window of the segment meets the target (-1/null:\n"
           "its last window misses).  docs/controller.md explains the law.\n");
}

static int sim_parse(int argc, char **argv, sim_cli *o)
{
    memset(o, 0, sizeof *o);
    o->window = 200;
    o->seed = 1;
    o->batch = 1;
    o->kv_bytes = 1;
    o->probe_cost = ES_PROBE_COST_FIELD;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int take = 1;
        if (!strcmp(a, "--json")) o->json = 1, take = 0;
        else if (!strcmp(a, "--progress")) o->progress = 1, take = 0;
        else if (!v) return cli_usage_error("simulate", "unknown option or missing value: '%s'", a);
        else if (!strcmp(a, "--stream")) o->stream = v;
        else if (!strcmp(a, "--policy")) o->policy = v;
        else if (!strcmp(a, "--target")) o->target = v;
        else if (!strcmp(a, "--plot")) o->plot = v;
        else if (!strcmp(a, "--state-in")) o->state_in = v;
        else if (!strcmp(a, "--state-out")) o->state_out = v;
        else if (!strcmp(a, "--candidates")) o->candidates = v;
        else if (!strcmp(a, "--window")) {
            if (cli_parse_long(v, 10, 100000000, &o->window))
                return cli_usage_error("simulate", "--window: '%s' is not a whole number >= 10", v);
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_long(v, 0, 0x7fffffffffffffffL, &o->seed))
                return cli_usage_error("simulate", "--seed: '%s' is not a whole number >= 0", v);
        } else if (!strcmp(a, "--batch")) {
            if (cli_parse_long(v, 1, 1000000, &o->batch))
                return cli_usage_error("simulate", "--batch: '%s' is not a whole number >= 1", v);
        } else if (!strcmp(a, "--labels")) {
            if (cli_parse_long(v, 0, 100000000, &o->labels))
                return cli_usage_error("simulate", "--labels: '%s' is not a whole number >= 0", v);
        } else if (!strcmp(a, "--probe-cost")) {
            if (cli_parse_long(v, 0, 1000000, &o->probe_cost))
                return cli_usage_error("simulate", "--probe-cost: '%s' is not a whole number >= 0", v);
        } else if (!strcmp(a, "--kv-bytes")) {
            uint64_t x;
            if (cli_parse_size(v, 1, UINT64_MAX >> 1, &x))
                return cli_usage_error("simulate", "--kv-bytes: '%s' is not a size >= 1 (K, M, G suffixes)", v);
            o->kv_bytes = (double)x;
        } else if (!strcmp(a, "--audit-share")) {
            if (cli_parse_double(v, &o->audit_share) || !(o->audit_share > 0 && o->audit_share <= 0.05))
                return cli_usage_error("simulate", "--audit-share: '%s' is not a fraction in (0, 0.05]", v);
        } else {
            return cli_usage_error("simulate", "unknown option: '%s'", a);
        }
        i += take;
    }
    if (!o->stream) return cli_usage_error("simulate", "--stream is required");
    if (!o->policy) return cli_usage_error("simulate", "--policy is required");
    if (!o->target) return cli_usage_error("simulate", "--target is required (tokens=B, kv=BYTES or em-loss=PTS)");
    return 0;
}

/* "0.99,0.95,0.9" */
static int parse_candidates(const char *s, double *v, uint32_t *n)
{
    *n = 0;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == 64 || cli_parse_double(tok, &v[*n]))
            return cli_usage_error("simulate", "--candidates: '%s' is not a list of at most 64 numbers", s);
        (*n)++;
    }
    return *n < 2 ? cli_usage_error("simulate", "--candidates: give at least two values") : 0;
}

/* The trace files, each loaded once. */
typedef struct sim_files {
    const char *path[MAX_FILES];
    es_traceset *ts[MAX_FILES];
    int n;
} sim_files;

static int load_file(sim_files *f, const char *path, es_traceset **out, es_error *err)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->path[i], path)) {
            *out = f->ts[i];
            return ES_OK;
        }
    if (f->n == MAX_FILES) return es_error_set(err, ES_EINVAL, path, 0, "--stream", "at most %d files", MAX_FILES);
    int rc = es_traceset_load(path, 0, &f->ts[f->n], NULL, err);
    if (rc) return rc;
    f->path[f->n] = path;
    *out = f->ts[f->n++];
    return ES_OK;
}

/* --stream: comma-separated segments FILE[+FILE...]:N.  The spec's text
 * is split in place (paths point into it). */
static int build_stream(char *spec, sim_files *f, es_stream *s, es_error *err)
{
    for (char *save = NULL, *seg = strtok_r(spec, ",", &save); seg; seg = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(seg, ':');
        long n;
        if (!colon || cli_parse_long(colon + 1, 1, 1000000000L, &n))
            return es_error_set(err, ES_EINVAL, "", 0, "--stream",
                                "'%s' is not FILE:N or FILE+FILE:N (N requests, at least 1)", seg);
        *colon = '\0';
        const es_traceset *sets[MAX_FILES];
        const char *names[MAX_FILES];
        uint32_t k = 0;
        for (char *s2 = NULL, *p = strtok_r(seg, "+", &s2); p; p = strtok_r(NULL, "+", &s2)) {
            if (k == MAX_FILES) return es_error_set(err, ES_EINVAL, "", 0, "--stream", "too many files in a mix");
            es_traceset *ts = NULL;
            int rc = load_file(f, p, &ts, err);
            if (rc) return rc;
            sets[k] = ts;
            names[k++] = p;
        }
        if (!k) return es_error_set(err, ES_EINVAL, "", 0, "--stream", "a segment without a file");
        int rc = es_stream_add(s, sets, names, k, (uint64_t)n, err);
        if (rc) return rc;
    }
    return es_stream_n_segments(s) ? ES_OK : es_error_set(err, ES_EINVAL, "", 0, "--stream", "no segment given");
}

typedef struct progress_ctx {
    int force;
} progress_ctx;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress_ctx *p = ctx;
    if (p->force && !isatty(2)) {
        if (done == total || done * 10 / total != (done - 256) * 10 / total)
            fprintf(stderr, "simulate: request %llu/%llu\n", (unsigned long long)done, (unsigned long long)total);
        return;
    }
    cli_progress("simulate: request", (size_t)done, (size_t)total);
}

/* ------------------------------------------------------------- printing */

static void print_json(const sim_cli *o, const es_stream *st, const es_controller *ctl, const es_controller_opts *co,
                       const es_sim_result *r)
{
    printf("{\"stream\":[");
    for (uint32_t g = 0; g < es_stream_n_segments(st); g++)
        printf("%s{\"segment\":%u,\"sets\":\"%s\"}", g ? "," : "", g, es_stream_segment_name(st, g));
    printf("],\"target\":{\"kind\":\"%s\",", sim_kind_name(co->target));
    sim_json_num("budget", co->target == ES_TARGET_EM_LOSS ? co->budget * 100 : co->budget, 0);
    printf("},\"window\":%ld,\"seed\":%ld,\"batch\":%ld,\"param\":\"%s\",\"candidates\":[", o->window, o->seed,
           o->batch, es_controller_param_name(ctl));
    for (uint32_t i = 0; i < es_controller_n_candidates(ctl); i++)
        printf("%s%.6g", i ? "," : "", es_controller_candidate(ctl, i));
    printf("],\"controller\":");
    sim_json_row(es_sim_row_get(r, 0));
    uint64_t shifts, falls;
    es_sim_controller_events(r, &shifts, &falls);
    printf(",\"shifts_detected\":%llu,\"fallbacks\":%llu,\"static_first\":", (unsigned long long)shifts,
           (unsigned long long)falls);
    sim_json_row(es_sim_row_get(r, 1));
    printf(",\"static_hindsight\":");
    sim_json_row(es_sim_row_get(r, 2));
    printf(",\"static_every_window\":");
    sim_json_row(es_sim_row_get(r, 3));
    printf(",\"anchors\":[");
    for (uint32_t i = 4; i < es_sim_n_rows(r); i++) {
        if (i > 4) putchar(',');
        sim_json_row(es_sim_row_get(r, i));
    }
    printf("],\"static\":[");
    for (uint32_t i = 0; i < es_sim_n_static(r); i++) {
        const es_sim_static *s = es_sim_static_get(r, i);
        printf("%s{", i ? "," : "");
        sim_json_num("value", s->value, 1);
        sim_json_num("em", s->em, 1);
        sim_json_num("tokens", s->tokens, 1);
        sim_json_num("kv_peak", s->kv_peak, 1);
        sim_json_num("disagreement", s->disagreement, 0);
        putchar('}');
    }
    const es_sim_row *c = es_sim_row_get(r, 0);
    double t = es_sim_static_tokens_at(r, c->sum.em);
    printf("],\"static_at_controller_em\":{");
    sim_json_num("em", c->sum.em, 1);
    sim_json_num("tokens", t, 1);
    sim_json_num("ratio", c->sum.tokens / t, 0);
    printf("}}\n");
}

static void print_text(const sim_cli *o, const es_stream *st, const es_controller *ctl, const es_controller_opts *co,
                       const es_sim_result *r)
{
    printf("stream:");
    for (uint32_t g = 0; g < es_stream_n_segments(st); g++) printf(" %s%s", g ? "| " : "", es_stream_segment_name(st, g));
    printf("\ntarget %s <= %g%s, window %ld, %s over %u candidates %g .. %g\n\n", sim_kind_name(co->target),
           co->target == ES_TARGET_EM_LOSS ? co->budget * 100 : co->budget,
           co->target == ES_TARGET_EM_LOSS ? " pts" : co->target == ES_TARGET_KV ? " bytes" : "", o->window,
           es_controller_param_name(ctl), es_controller_n_candidates(ctl), es_controller_candidate(ctl, 0),
           es_controller_candidate(ctl, es_controller_n_candidates(ctl) - 1));
    const es_sim_row *c = es_sim_row_get(r, 0);
    printf("controller, per window:\n%4s %3s %8s %6s %12s %12s %8s %8s %17s %6s %5s\n", "win", "seg", "start", "EM",
           "tokens/req", "kv/req", "param", "disagree", "95% interval", "audits", "met");
    for (uint32_t i = 0; i < c->n_windows; i++) {
        const es_sim_window *w = &c->windows[i];
        printf("%4u %3u %8llu %6.3f %12.1f %12.4g %8.4g %7.2f%% [%5.2f%%, %5.2f%%] %6llu %5s\n", i, w->segment,
               (unsigned long long)w->start, w->em, w->tokens, w->kv_peak, w->param, 100 * w->disagreement,
               100 * w->disagreement_lo, 100 * w->disagreement_hi, (unsigned long long)w->audits,
               w->target_met ? "yes" : "NO");
    }
    /* the name column as wide as the longest name */
    char name[256], param[32];
    int width = 3;
    for (uint32_t i = 0; i < es_sim_n_rows(r); i++) {
        sim_row_name(es_sim_row_get(r, i), name, sizeof name);
        if ((int)strlen(name) > width) width = (int)strlen(name);
    }
    printf("\n%-*s %8s %6s %12s %12s %8s %8s %8s %s\n", width, "row", "param", "EM", "tokens/req", "kv/req",
           "disagree", "audits", "met", "recovery per shift");
    for (uint32_t i = 0; i < es_sim_n_rows(r); i++) {
        const es_sim_row *w = es_sim_row_get(r, i);
        char rec[256], met[32];
        sim_fmt_recovery(&w->sum, rec, sizeof rec);
        snprintf(met, sizeof met, "%u/%u", w->sum.windows_met, w->sum.windows);
        sim_row_name(w, name, sizeof name);
        sim_fmt_param(w, param, sizeof param);
        printf("%-*s %8s %6.3f %12.1f %12.4g %7.2f%% %7.2f%% %8s %s\n", width, name, param, w->sum.em, w->sum.tokens,
               w->sum.kv_peak, 100 * w->sum.disagreement, 100 * w->sum.audit_token_share, met, rec);
    }
    uint64_t shifts, falls;
    es_sim_controller_events(r, &shifts, &falls);
    double t = es_sim_static_tokens_at(r, c->sum.em);
    printf("\nthe controller detected %llu shift(s) and fell back %llu time(s); audits: %llu requests, %.2f%% of its "
           "tokens\n",
           (unsigned long long)shifts, (unsigned long long)falls, (unsigned long long)c->sum.audits,
           100 * c->sum.audit_token_share);
    if (isfinite(t))
        printf("a static threshold needs %.1f tokens/request for the controller's EM %.4f: controller/static = %.3f\n",
               t, c->sum.em, c->sum.tokens / t);
    else
        printf("no static threshold reaches the controller's EM %.4f\n", c->sum.em);
}

/* ---------------------------------------------------------------- main */

static int run(const sim_cli *o, es_error *err)
{
    es_controller_opts co;
    es_target_kind kind = ES_TARGET_TOKENS;
    double budget, cand[64];
    uint32_t n_cand = 0;
    if (sim_parse_target("simulate", o->target, &kind, &budget)) return CLI_USAGE;
    if (o->candidates && parse_candidates(o->candidates, cand, &n_cand)) return CLI_USAGE;
    es_controller_opts_init(&co, kind, budget);
    co.window = (uint32_t)o->window;
    co.batch = (uint32_t)o->batch;
    co.kv_bytes_per_position = o->kv_bytes;
    co.seed = (uint64_t)o->seed;
    if (o->audit_share > 0) co.audit_share = o->audit_share;
    if (n_cand) co.candidates = cand, co.n_candidates = n_cand;

    es_outfile *plot = NULL;
    es_policy *p = NULL;
    es_controller *ctl = NULL;
    es_stream *st = NULL;
    es_sim_result *res = NULL;
    sim_files files = {{0}, {0}, 0};
    char *spec = strdup(o->stream);
    int rc = spec ? ES_OK : ES_ENOMEM;
    if (!rc && o->plot) rc = es_outfile_open(o->plot, NULL, &plot, err);
    if (!rc) rc = es_policy_new_any(o->policy, &p, err);
    if (!rc) rc = es_controller_new(p, &co, &ctl, err);
    if (!rc && o->state_in) rc = es_controller_load(ctl, o->state_in, err);
    if (!rc) rc = es_stream_new(&st);
    if (!rc) rc = build_stream(spec, &files, st, err);
    if (!rc) {
        es_sim_opts so;
        es_sim_opts_init(&so);
        so.seed = (uint64_t)o->seed;
        so.probe_cost = (int32_t)o->probe_cost;
        so.label_delay = (uint32_t)o->labels;
        progress_ctx pc = {o->progress};
        so.progress = on_progress;
        so.progress_ctx = &pc;
        rc = es_simulate(st, p, ctl, &co, &so, &res, err);
        cli_progress_end();
    }
    if (!rc && o->state_out) rc = es_controller_save(ctl, o->state_out, err);
    if (!rc) {
        if (o->json) print_json(o, st, ctl, &co, res);
        else print_text(o, st, ctl, &co, res);
    }
    if (!rc && plot) {
        const es_sim_row *rows[16];
        const char *segs[64];
        uint32_t nr = 0;
        for (uint32_t i = 0; i < es_sim_n_rows(res) && nr < 16; i++) rows[nr++] = es_sim_row_get(res, i);
        for (uint32_t g = 0; g < es_stream_n_segments(st) && g < 64; g++) segs[g] = es_stream_segment_name(st, g);
        if (sim_plot_rows(es_outfile_fp(plot), rows, nr, segs, es_stream_n_segments(st), &co,
                          es_controller_param_name(ctl)))
            rc = es_error_set(err, ES_EIO, es_outfile_name(plot), 0, "--plot", "write failed (or out of memory)");
        else rc = es_outfile_commit(plot, err), plot = NULL;
    }
    es_outfile_abort(plot);
    es_sim_result_free(res);
    es_stream_free(st);
    es_controller_free(ctl);
    es_policy_free(p);
    for (int i = 0; i < files.n; i++) es_traceset_free(files.ts[i]);
    free(spec);
    return rc;
}

int cmd_simulate(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            sim_help();
            return CLI_OK;
        }
    sim_cli o;
    int rc = sim_parse(argc, argv, &o);
    if (rc) return rc;
    es_error err;
    memset(&err, 0, sizeof err);
    rc = run(&o, &err);
    if (rc == CLI_USAGE) return rc;
    return rc ? cli_report(&err, rc) : CLI_OK;
}
