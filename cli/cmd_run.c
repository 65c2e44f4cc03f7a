/* cmd_run.c - `earlystop run`: generate live with a stopping policy deciding
 * inside the loop, beside the same run with `full`.
 *
 * The loop feeds the policy exactly the events es_replay_item feeds it from a
 * recorded trace (probes only when the policy has a within-sample rule, the
 * token budget cut at its cap, no per-token events), and sample i of item j
 * draws from (seed, j, i) as in `earlystop generate`: so the savings measured
 * here equal what `earlystop eval` computes on the trace of the same seed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "earlystop_io.h"
#include "earlystop_lm.h"
#include "lm_cli.h"
#include "run_ctl.h"

typedef struct run_cli {
    lm_gen_opts g;
    const char *policy, *baseline;
    int json, progress;
    es_lm_pool *pool;
    /* --controller: the online controller over a stream of tasks */
    const char *controller, *stream, *plot;
    long window;
    double audit_share;
} run_cli;

/* Totals of one policy over the items. */
typedef struct run_totals {
    size_t items, correct, samples, probes;
    uint64_t tokens, probe_tokens;
    double seconds;
    size_t kv_peak_bytes;    /* KV cache of the largest round, as drawn at once */
    int probe_lines;         /* its probes were free text probes at line ends */
} run_totals;

/* Says what is compared and that the decisions equal a replay. */
static void run_help(void)
{
    lm_gen_opts def;
    lm_gen_opts_init(&def, 50);
    printf("usage: earlystop run [--model M] --task T --policy SPEC [--items N] [--samples K]\n"
           "                     [--probe-every P] [--seed S] [--json] [options]\n\n"
           "Generate with the built-in model while a stopping policy decides inside the\n"
           "loop: samples not drawn and tokens not generated are never computed.  Prints\n"
           "EM, tokens generated (probes included), wall-clock time and the KV-cache memory\n"
           "held at peak, beside the same run with `full`.  The decisions equal those of\n"
           "`earlystop eval --policy SPEC` on `earlystop generate` traces of the same seed.\n\n"
           "  --policy SPEC     stopping policy (see `earlystop eval --help`), '@file' for JSON\n"
           "  --baseline SPEC   what to compare with (default full); 'none' to skip it\n");
    lm_gen_opts_help(stdout, &def);
    printf("  --progress        progress on stderr even when it is not a terminal\n"
           "  --json            one JSON object per policy on stdout\n\n"
           "The online controller (docs/controller.md), live with the task switched:\n"
           "  --controller T    tokens=B | kv=BYTES | em-loss=PTS: move the policy's threshold\n"
           "                    to hold it; needs --stream.  Runs the questions with the\n"
           "                    policy as given (static), then with the controller (and, for\n"
           "                    em-loss, `full` to measure the disagreement); per window of\n"
           "                    W questions: EM, tokens, KV bytes, threshold, target met\n"
           "  --stream SPEC     TASK:N[,TASK:N]..., e.g. last_letters:200,arithmetic:200\n"
           "  --window W        questions per window, and the recovery allowed (default 50)\n"
           "  --audit-share F   tokens share audits may spend once settled (default 0.03\n"
           "                    for em-loss, 0.01 otherwise)\n"
           "  --plot FILE       an SVG of the windows\n\n"
           "A policy with a within-sample rule that decides on probes (dynasor, deer,\n"
           "deepconf, ...) needs them: --probe-every 0 is then an error, as `earlystop\n"
           "eval` refuses it on a file without probes.\n");
}

/* Exit 2 with the option named on any bad value. */
static int run_parse(int argc, char **argv, run_cli *o)
{
    memset(o, 0, sizeof *o);
    lm_gen_opts_init(&o->g, 50);
    o->baseline = "full";
    o->window = 50;
    /* options that belong to one mode only: given to the other, refused
     * rather than silently ignored */
    const char *static_only = NULL, *ctl_only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--task") || !strcmp(a, "--items") || !strcmp(a, "--baseline")) static_only = a;
        if (!strcmp(a, "--window") || !strcmp(a, "--audit-share") || !strcmp(a, "--plot")) ctl_only = a;
        int r = lm_gen_opt("run", argc, argv, &i, &o->g);
        if (r < 0) return CLI_USAGE;
        if (r) continue;
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--progress")) o->progress = 1;
        else if (!strcmp(a, "--policy") && i + 1 < argc) o->policy = argv[++i];
        else if (!strcmp(a, "--baseline") && i + 1 < argc) o->baseline = argv[++i];
        else if (!strcmp(a, "--controller") && i + 1 < argc) o->controller = argv[++i];
        else if (!strcmp(a, "--stream") && i + 1 < argc) o->stream = argv[++i];
        else if (!strcmp(a, "--plot") && i + 1 < argc) o->plot = argv[++i];
        else if (!strcmp(a, "--window") && i + 1 < argc) {
            if (cli_parse_long(argv[++i], 10, 1000000, &o->window))
                return cli_usage_error("run", "--window: '%s' is not a whole number >= 10", argv[i]);
        } else if (!strcmp(a, "--audit-share") && i + 1 < argc) {
            if (cli_parse_double(argv[++i], &o->audit_share) || !(o->audit_share > 0 && o->audit_share <= 0.05))
                return cli_usage_error("run", "--audit-share: '%s' is not a fraction in (0, 0.05]", argv[i]);
        }
        else return cli_usage_error("run", "unknown option or missing value: '%s'", a);
    }
    if (o->controller && !o->stream) return cli_usage_error("run", "--controller needs --stream TASK:N[,TASK:N]...");
    if (o->stream && !o->controller) return cli_usage_error("run", "--stream goes with --controller");
    if (ctl_only && !o->controller) return cli_usage_error("run", "%s goes with --controller", ctl_only);
    if (static_only && o->controller)
        return cli_usage_error("run", "%s does not go with --controller (--stream names the tasks and counts)",
                               static_only);
    if (o->stream) o->g.have_task = 1; /* the stream names the tasks */
    if (lm_gen_opts_check("run", &o->g)) return CLI_USAGE;
    if (!o->policy) return cli_usage_error("run", "--policy is required");
    return 0;
}

/* Progress per item: "\r" updates on a terminal; with --progress and no
 * terminal, a plain line every tenth of the run (logs stay short). */
static void run_progress(const run_cli *o, const char *label, long done, long total)
{
    int tty = isatty(2);
    if (o->json && !tty && !o->progress) return;
    if (tty) {
        fprintf(stderr, "\r%s: item %ld/%ld (%.0f%%)", label, done, total, 100.0 * done / total);
        if (done == total) fputc('\n', stderr);
    } else if (o->progress && (done == total || done * 10 / total != (done - 1) * 10 / total)) {
        fprintf(stderr, "%s: item %ld/%ld (%.0f%%)\n", label, done, total, 100.0 * done / total);
    }
    fflush(stderr);
}

/* One policy over all items.  Probes are made only when the policy has a
 * within-sample rule; a token budget becomes the generator's token limit. */
static int run_policy(const es_lm *m, const run_cli *o, const char *spec, const char *label,
                      run_totals *tot, char *canon, size_t canon_cap, es_error *err)
{
    memset(tot, 0, sizeof *tot);
    es_policy *p = NULL;
    int rc = es_policy_new_any(spec, &p, err);
    if (rc) return rc;
    snprintf(canon, canon_cap, "%s", es_policy_spec(p));
    es_policy_info info;
    es_policy_get_info(p, &info);
    es_lm_gen_opts go;
    es_lm_gen_opts_default(&go);
    go.temperature = (float)o->g.temperature;
    go.probe_lines = lm_probe_lines(o->g.probe_lines, o->g.probe_given, &info);
    go.probe_every = go.probe_lines ? 0 : (int)o->g.probe_every;
    go.pool = o->pool;
    es_lm_live *lv = NULL;
    rc = es_lm_live_new(m, &go, p, es_task_answer_type(o->g.task), (uint32_t)o->g.samples, &lv, err);
    tot->probe_lines = !rc && info.has_within && es_lm_live_text_probes(lv);
    uint32_t batch = info.batch;
    double t0 = es_wall_seconds();
    for (long j = o->g.start; !rc && j < o->g.start + o->g.items; j++) {
        es_task_example ex;
        es_lm_live_result r;
        rc = es_task_make(o->g.task, (uint64_t)o->g.seed, (uint64_t)j, &ex);
        if (!rc) rc = es_lm_live_item(lv, ex.prompt, ex.gold, (uint64_t)o->g.seed, (uint64_t)j, &r);
        if (rc) {
            es_error_set(err, rc, NULL, 0, "policy", "item %ld: %s", j,
                         es_policy_errmsg(p)[0] ? es_policy_errmsg(p) : es_strerror(rc));
            break;
        }
        tot->items++;
        tot->correct += (size_t)r.correct;
        tot->samples += r.samples;
        tot->probes += r.probes;
        tot->tokens += r.tokens;
        tot->probe_tokens += r.probe_tokens;
        /* KV memory as a server drawing each round's samples at once holds it */
        uint32_t round = batch == 0 || batch > r.samples ? r.samples : batch;
        size_t kv = (size_t)round * r.peak_positions * es_lm_live_kv_bytes_per_position(lv);
        if (kv > tot->kv_peak_bytes) tot->kv_peak_bytes = kv;
        run_progress(o, label, j - o->g.start + 1, o->g.items);
    }
    tot->seconds = es_wall_seconds() - t0;
    es_lm_live_free(lv);
    es_policy_free(p);
    return rc;
}

/* Width of the policy column; a longer spec gets a line of its own above
 * its row so that the columns stay aligned. */
#define RUN_SPEC_W 28

static void print_header(void)
{
    printf("%-*s %6s %9s %8s %9s %9s %10s %8s %10s %7s %7s\n", RUN_SPEC_W, "policy", "EM", "correct",
           "samples", "tokens", "probe tok", "tokens", "wall s", "KV peak", "saved", "saved");
    printf("%-*s %6s %9s %8s %9s %9s %10s %8s %10s %7s %7s\n", RUN_SPEC_W, "", "", "", "/item", "", "",
           "/item", "", "KiB", "tokens", "time");
}

/* Savings are against the baseline run of the same invocation. */
static void print_totals(const char *spec, const run_totals *t, const run_totals *base,
                         const run_cli *o, int threads, int json)
{
    double n = t->items ? (double)t->items : 1.0;
    uint64_t all = t->tokens + t->probe_tokens;
    double saved = base && base->tokens + base->probe_tokens
                       ? 1.0 - (double)all / (double)(base->tokens + base->probe_tokens) : 0.0;
    if (json) {
        printf("{\"policy\":\"%s\",\"task\":\"%s\",\"items\":%zu,\"seed\":%ld,\"em\":%.4f,"
               "\"correct\":%zu,\"samples\":%zu,\"samples_per_item\":%.3f,\"probes\":%zu,"
               "\"tokens\":%llu,\"probe_tokens\":%llu,\"tokens_total\":%llu,\"tokens_per_item\":%.2f,"
               "\"seconds\":%.3f,\"threads\":%d,\"kv_peak_bytes\":%zu,\"token_savings\":%.4f,"
               "\"probes_at\":\"%s\"}\n",
               spec, es_task_name(o->g.task), t->items, o->g.seed, t->correct / n, t->correct, t->samples,
               t->samples / n, t->probes, (unsigned long long)t->tokens,
               (unsigned long long)t->probe_tokens, (unsigned long long)all, all / n, t->seconds, threads,
               t->kv_peak_bytes, saved, t->probe_lines ? "lines" : "every");
        return;
    }
    int long_spec = strlen(spec) > RUN_SPEC_W;
    if (long_spec) printf("%s\n", spec);
    char correct[48], ssave[16] = "-", tsave[16] = "-";
    snprintf(correct, sizeof correct, "%zu/%zu", t->correct, t->items);
    if (base) {
        snprintf(ssave, sizeof ssave, "%.1f%%", 100 * saved);
        snprintf(tsave, sizeof tsave, "%.1f%%", base->seconds > 0 ? 100 * (1 - t->seconds / base->seconds) : 0.0);
    }
    printf("%-*s %6.3f %9s %8.2f %9llu %9llu %10.1f %8.2f %10.1f %7s %7s\n", RUN_SPEC_W, long_spec ? "" : spec,
           t->correct / n, correct, t->samples / n, (unsigned long long)t->tokens,
           (unsigned long long)t->probe_tokens, all / n, t->seconds, t->kv_peak_bytes / 1024.0, ssave, tsave);
}

/* Both specs parse, and a within-sample rule gets probes (as eval refuses a
 * within rule on a file without probes: it would never stop a sample and
 * report 0% saved): checked before the baseline's minutes are spent. */
static int check_spec(const run_cli *o, const char *spec, es_error *err)
{
    es_policy *p = NULL;
    int rc = es_policy_new_any(spec, &p, err);
    es_policy_info info = {0};
    if (!rc) es_policy_get_info(p, &info);
    if (!rc && info.needs_probes && o->g.probe_every <= 0 && !o->g.probe_lines)
        rc = es_error_set(err, ES_EINVAL, NULL, 0, "probe-every",
                          "policy '%s' decides inside a sample and needs probes: give --probe-every > 0 or lines",
                          es_policy_spec(p));
    es_policy_free(p);
    return rc;
}

/* The baseline first, then the policy, each on a fresh generator. */
int cmd_run(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) { run_help(); return CLI_OK; }
    run_cli o;
    int rc = run_parse(argc, argv, &o);
    if (rc) return rc;
    es_error err;
    memset(&err, 0, sizeof err);
    es_lm *m = NULL;
    char model_buf[4096];
    o.g.model = lm_model_path(o.g.model, model_buf, sizeof model_buf);
    int with_base = strcmp(o.baseline, "none") != 0;
    if ((with_base && (rc = check_spec(&o, o.baseline, &err)) != 0) || (rc = check_spec(&o, o.policy, &err)) != 0)
        return cli_report(&err, rc);
    if ((rc = es_lm_load(o.g.model, &m, &err)) != 0) return cli_report(&err, rc);
    if ((rc = lm_pool_open("run", o.g.threads, &o.pool)) != 0) {
        es_lm_free(m);
        return rc;
    }
    int threads = es_lm_pool_threads(o.pool);
    if (o.controller) {
        run_ctl_opts co = {o.policy, o.controller, o.stream, o.plot, o.window, o.g.seed, o.g.samples,
                           o.g.probe_every, o.g.start, o.g.temperature, o.audit_share, o.json, o.pool,
                           o.g.probe_lines, o.g.probe_given};
        rc = run_controller(m, &co, &err);
        es_lm_free(m);
        es_lm_pool_free(o.pool);
        return rc == CLI_USAGE ? rc : rc ? cli_report(&err, rc) : CLI_OK;
    }
    if (!o.json)
        fprintf(stderr, "earlystop run: %s, %ld items x up to %ld samples, %s then %s, %d thread%s\n",
                es_task_name(o.g.task), o.g.items, o.g.samples, o.baseline, o.policy, threads,
                threads > 1 ? "s" : "");
    run_totals base, pol;
    char base_spec[256] = "", pol_spec[256] = "";
    if (with_base) rc = run_policy(m, &o, o.baseline, "run (baseline)", &base, base_spec, sizeof base_spec, &err);
    if (!rc) rc = run_policy(m, &o, o.policy, "run (policy)", &pol, pol_spec, sizeof pol_spec, &err);
    if (!rc) {
        if (!o.json) {
            char probes[96];
            if (o.g.probe_lines) snprintf(probes, sizeof probes, "a text probe at each line end");
            else
                snprintf(probes, sizeof probes, "probe every %ld%s", o.g.probe_every,
                         pol.probe_lines ? " (the policy: a text probe at each line end)" : "");
            printf("%s, %ld items from %ld, up to %ld samples, %s, seed %ld, T=%.2f, %d thread%s\n",
                   es_task_name(o.g.task), o.g.items, o.g.start, o.g.samples, probes, o.g.seed, o.g.temperature,
                   threads, threads > 1 ? "s" : "");
            print_header();
        }
        if (with_base) print_totals(base_spec, &base, NULL, &o, threads, o.json);
        print_totals(pol_spec, &pol, with_base ? &base : NULL, &o, threads, o.json);
    }
    es_lm_free(m);
    es_lm_pool_free(o.pool);
    return rc ? cli_report(&err, rc) : CLI_OK;
}
