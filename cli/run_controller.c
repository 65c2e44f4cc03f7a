/* run_controller.c - `earlystop run --controller TARGET --stream TASK:N,...`:
 * the online controller on the built-in model, live, with the task switched
 * between segments.  The same questions (segment g, question j of its task,
 * sample i drawing from (seed, j, i)) are run three ways: with the policy at
 * its own value (the static threshold an operator set for the first task),
 * with the controller moving it, and, for an em-loss target, with `full`,
 * whose answers tell each request's disagreement (the controller never sees
 * them: it has its own audits).  Windows and recovery as `simulate` reports
 * them (es_window_log). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "earlystop_io.h"
#include "earlystop_online.h"
#include "lm_cli.h"
#include "run_ctl.h"
#include "sim_out.h"

enum { MAX_SEG = 16 };

typedef struct seg {
    es_task_kind task;
    long n;
} seg;

/* "date:100,arithmetic:100" */
static int parse_stream(const char *spec, seg *s, uint32_t *n)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        if (*n == MAX_SEG || !colon)
            return cli_usage_error("run", "--stream: '%s' is not TASK:N[,TASK:N]... (at most %d segments)", spec,
                                   MAX_SEG);
        *colon = '\0';
        if (es_task_parse(tok, &s[*n].task))
            return cli_usage_error("run", "--stream: unknown task '%s' (last_letters, date, arithmetic)", tok);
        if (cli_parse_long(colon + 1, 1, 1000000, &s[*n].n))
            return cli_usage_error("run", "--stream: '%s' is not a number of questions >= 1", colon + 1);
        (*n)++;
    }
    return *n ? 0 : cli_usage_error("run", "--stream: no segment");
}

/* One live instance per task (each has its own answer type) over policy p. */
typedef struct lives {
    es_lm_live *lv[3];
} lives;

static int lives_new(const es_lm *m, const run_ctl_opts *o, es_policy *p, const seg *s, uint32_t n, lives *L,
                     es_error *err)
{
    memset(L, 0, sizeof *L);
    es_lm_gen_opts go;
    es_lm_gen_opts_default(&go);
    go.temperature = (float)o->temperature;
    es_policy_info info;
    es_policy_get_info(p, &info);
    go.probe_lines = lm_probe_lines(o->probe_lines, o->probe_given, &info);
    go.probe_every = go.probe_lines ? 0 : (int)o->probe_every;
    go.pool = o->pool;
    for (uint32_t g = 0; g < n; g++) {
        int t = (int)s[g].task;
        if (L->lv[t]) continue;
        int rc = es_lm_live_new(m, &go, p, es_task_answer_type(s[g].task), (uint32_t)o->samples, &L->lv[t], err);
        if (rc) return rc;
    }
    return ES_OK;
}

static void lives_free(lives *L)
{
    for (int t = 0; t < 3; t++) es_lm_live_free(L->lv[t]);
}

/* The served answer's key (NULL: no answer) against gold. */
static int key_equal(es_task_kind task, const char *a, const char *b)
{
    return a && b && es_answer_equal(es_task_answer_type(task), a, b);
}

/* Longest settled sample: the KV positions a request drawing one sample at
 * a time holds at its peak (es_outcome.kv_peak with rounds of one). */
static uint64_t longest(const es_lm_live_sample *s, uint32_t n, uint32_t upto)
{
    uint64_t m = 0;
    for (uint32_t i = 0; i < n && i < upto; i++)
        if (s[i].tokens > m) m = s[i].tokens;
    return m;
}

typedef struct run_state {
    const run_ctl_opts *o;
    const seg *s;
    uint32_t n_seg;
    es_controller_opts co;
    es_window_log *log; /* rows: 0 controller, 1 static */
    es_lm_live_sample *buf;
    char (*full_key)[128];  /* per request, the full run's answer key (em-loss) */
    double bpp;
} run_state;

/* Every question of the stream, in order: fn(ctx, request, task, question). */
static int each_request(const run_state *S, const char *label, int (*fn)(void *, uint64_t, es_task_kind, long), void *ctx)
{
    uint64_t r = 0, total = 0;
    for (uint32_t g = 0; g < S->n_seg; g++) total += (uint64_t)S->s[g].n;
    for (uint32_t g = 0; g < S->n_seg; g++)
        for (long j = 0; j < S->s[g].n; j++, r++) {
            int rc = fn(ctx, r, S->s[g].task, S->o->start + j);
            if (rc) return rc;
            if (isatty(2) && !S->o->json) fprintf(stderr, "\rrun (%s): question %llu/%llu", label,
                                                  (unsigned long long)r + 1, (unsigned long long)total);
        }
    if (isatty(2) && !S->o->json) fputc('\n', stderr);
    return ES_OK;
}

typedef struct pass {
    run_state *S;
    lives L;
    es_policy *p;
    es_controller *ctl;
    es_error *err;
    double value;
} pass;

static int full_one(void *ctx, uint64_t r, es_task_kind task, long j)
{
    pass *P = ctx;
    es_task_example ex;
    es_lm_live_result res;
    int rc = es_task_make(task, (uint64_t)P->S->o->seed, (uint64_t)j, &ex);
    if (!rc) rc = es_lm_live_item(P->L.lv[task], ex.prompt, ex.gold, (uint64_t)P->S->o->seed, (uint64_t)j, &res);
    if (rc) return es_error_set(P->err, rc, NULL, 0, "full", "question %ld: %s", j, es_strerror(rc));
    const char *k = es_lm_live_key(P->L.lv[task], res.answer);
    snprintf(P->S->full_key[r], sizeof P->S->full_key[r], "%s", k ? k : "");
    return ES_OK;
}

/* Canonical keys are equal exactly when the answers are ("": none). */
static int disagrees(const run_state *S, uint64_t r, const char *key)
{
    if (!S->full_key) return -1;
    return strcmp(key ? key : "", S->full_key[r]) != 0;
}

static int static_one(void *ctx, uint64_t r, es_task_kind task, long j)
{
    pass *P = ctx;
    run_state *S = P->S;
    es_task_example ex;
    es_lm_live_result res;
    uint32_t n = 0;
    int rc = es_task_make(task, (uint64_t)S->o->seed, (uint64_t)j, &ex);
    if (!rc)
        rc = es_lm_live_item_record(P->L.lv[task], ex.prompt, ex.gold, (uint64_t)S->o->seed, (uint64_t)j, &res, S->buf,
                                    &n);
    if (rc) return es_error_set(P->err, rc, NULL, 0, "policy", "question %ld: %s", j, es_policy_errmsg(P->p));
    es_request_figures f = {res.correct, disagrees(S, r, es_lm_live_key(P->L.lv[task], res.answer)),
                            (double)(res.tokens + res.probe_tokens), 0, (double)longest(S->buf, n, n) * S->bpp,
                            P->value, 0};
    es_window_log_add(S->log, 1, r, &f);
    return ES_OK;
}

static int controller_one(void *ctx, uint64_t r, es_task_kind task, long j)
{
    pass *P = ctx;
    run_state *S = P->S;
    es_task_example ex;
    es_lm_live_result res;
    es_controller_ticket t;
    es_controller_begin(P->ctl, r, &t);
    int rc = es_controller_apply(P->ctl, &t, P->p, P->err);
    if (rc) return rc;
    uint32_t n = 0;
    if (!(rc = es_task_make(task, (uint64_t)S->o->seed, (uint64_t)j, &ex)))
        rc = es_lm_live_item_record(P->L.lv[task], ex.prompt, ex.gold, (uint64_t)S->o->seed, (uint64_t)j, &res, S->buf,
                                    &n);
    if (rc) return es_error_set(P->err, rc, NULL, 0, "policy", "question %ld: %s", j, es_policy_errmsg(P->p));
    int32_t ans[1024];
    uint32_t tok[1024], prb[1024];
    for (uint32_t i = 0; i < n && i < 1024; i++) ans[i] = S->buf[i].answer, tok[i] = S->buf[i].tokens,
                                                prb[i] = S->buf[i].probe_tokens;
    es_controller_request req = {&t, n, ans, tok, prb, NULL, (uint32_t)S->o->samples,
                                 es_lm_live_max_answers(P->L.lv[task])};
    es_controller_result cr;
    if ((rc = es_controller_observe(P->ctl, &req, &cr, P->err))) return rc;
    const char *key = es_lm_live_key(P->L.lv[task], cr.answer);
    double kv = (double)(t.audit ? longest(S->buf, n, n) : longest(S->buf, n, cr.samples));
    es_request_figures f = {key_equal(task, key, ex.gold), disagrees(S, r, key),
                            (double)(cr.tokens + cr.audit_tokens), (double)cr.audit_tokens, kv * S->bpp, t.value,
                            t.audit};
    es_window_log_add(S->log, 0, r, &f);
    return ES_OK;
}

/* "0.25%", or "-" when not measured */
static const char *pct(double v, char *buf, size_t cap)
{
    if (isfinite(v)) snprintf(buf, cap, "%.2f%%", 100 * v);
    else snprintf(buf, cap, "-");
    return buf;
}

static void print_row_line(const es_sim_row *w, const char *label)
{
    char rec[256], met[32], dis[32], param[32];
    sim_fmt_recovery(&w->sum, rec, sizeof rec);
    sim_fmt_param(w, param, sizeof param);
    snprintf(met, sizeof met, "%u/%u", w->sum.windows_met, w->sum.windows);
    printf("%-12s %8s %6.3f %12.1f %12.4g %9s %7.2f%% %8s %s\n", label, param, w->sum.em, w->sum.tokens,
           w->sum.kv_peak, pct(w->sum.disagreement, dis, sizeof dis), 100 * w->sum.audit_token_share, met, rec);
}

static void report(const run_state *S, const es_sim_row *ctl, const es_sim_row *st, es_controller *c, const char *name)
{
    es_controller_status cs;
    es_controller_get_status(c, &cs);
    if (S->o->json) {
        printf("{\"stream\":[");
        for (uint32_t g = 0; g < S->n_seg; g++)
            printf("%s{\"task\":\"%s\",\"questions\":%ld}", g ? "," : "", es_task_name(S->s[g].task), S->s[g].n);
        printf("],\"target\":{\"kind\":\"%s\",", sim_kind_name(S->co.target));
        sim_json_num("budget", S->co.target == ES_TARGET_EM_LOSS ? 100 * S->co.budget : S->co.budget, 0);
        printf("},\"window\":%u,\"seed\":%ld,\"param\":\"%s\",\"kv_bytes_per_position\":%.0f,\"controller\":",
               S->co.window, S->o->seed, name, S->bpp);
        sim_json_row(ctl);
        printf(",\"static\":");
        sim_json_row(st);
        printf(",\"shifts_detected\":%llu,\"fallbacks\":%llu}\n", (unsigned long long)cs.shifts,
               (unsigned long long)cs.fallbacks);
        return;
    }
    printf("stream:");
    for (uint32_t g = 0; g < S->n_seg; g++) printf(" %s%s:%ld", g ? "| " : "", es_task_name(S->s[g].task), S->s[g].n);
    printf("\ntarget %s <= %g%s, window %u, %s; KV bytes per position %.0f\n\n", sim_kind_name(S->co.target),
           S->co.target == ES_TARGET_EM_LOSS ? 100 * S->co.budget : S->co.budget,
           S->co.target == ES_TARGET_EM_LOSS ? " pts" : S->co.target == ES_TARGET_KV ? " bytes" : "", S->co.window,
           name, S->bpp);
    printf("controller, per window:\n%4s %3s %7s %6s %12s %12s %8s %8s %6s %5s\n", "win", "seg", "start", "EM",
           "tokens/req", "kv/req", "param", "disagree", "audits", "met");
    for (uint32_t i = 0; i < ctl->n_windows; i++) {
        const es_sim_window *w = &ctl->windows[i];
        char dis[32];
        printf("%4u %3u %7llu %6.3f %12.1f %12.4g %8.4g %8s %6llu %5s\n", i, w->segment, (unsigned long long)w->start,
               w->em, w->tokens, w->kv_peak, w->param, pct(w->disagreement, dis, sizeof dis),
               (unsigned long long)w->audits, w->target_met ? "yes" : "NO");
    }
    printf("\n%-12s %8s %6s %12s %12s %9s %8s %8s %s\n", "row", "param", "EM", "tokens/req", "kv/req", "disagree",
           "audits", "met", "recovery per shift");
    print_row_line(st, "static");
    print_row_line(ctl, "controller");
    printf("\nthe controller detected %llu shift(s) and fell back %llu time(s)\n", (unsigned long long)cs.shifts,
           (unsigned long long)cs.fallbacks);
}

int run_controller(const es_lm *m, const run_ctl_opts *o, es_error *err)
{
    seg s[MAX_SEG];
    uint32_t n_seg;
    run_state S = {o, s, 0, {0}, NULL, NULL, NULL, 1};
    es_target_kind kind = ES_TARGET_TOKENS;
    double budget;
    if (parse_stream(o->stream, s, &n_seg) || sim_parse_target("run", "--controller", o->target, &kind, &budget)) return CLI_USAGE;
    S.n_seg = n_seg;
    es_controller_opts_init(&S.co, kind, budget);
    S.co.window = (uint32_t)o->window;
    S.co.seed = (uint64_t)o->seed;
    if (o->audit_share > 0) S.co.audit_share = o->audit_share;
    uint64_t req[MAX_SEG], total = 0;
    for (uint32_t g = 0; g < n_seg; g++) total += (uint64_t)(req[g] = (uint64_t)s[g].n);
    pass P = {&S, {{0}}, NULL, NULL, err, NAN}, F = {&S, {{0}}, NULL, NULL, err, NAN};
    es_outfile *plot = NULL;
    int rc = o->plot ? es_outfile_open(o->plot, NULL, &plot, err) : ES_OK;
    if (!rc) rc = es_policy_new_any(o->policy, &P.p, err);
    if (!rc) rc = es_controller_new(P.p, &S.co, &P.ctl, err);
    if (!rc && es_window_log_new(kind, budget, S.co.window, req, n_seg, 2, &S.log))
        rc = es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "out of memory");
    if (!rc && !(S.buf = calloc((size_t)o->samples + 1, sizeof *S.buf)))
        rc = es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "out of memory");
    if (!rc) rc = lives_new(m, o, P.p, s, n_seg, &P.L, err);
    if (!rc) {
        es_lm_live *any = P.L.lv[s[0].task];
        S.bpp = (double)es_lm_live_kv_bytes_per_position(any);
        S.co.kv_bytes_per_position = S.bpp;
        /* the controller measures KV in bytes at the model's size */
        es_controller_free(P.ctl);
        P.ctl = NULL;
        rc = es_controller_new(P.p, &S.co, &P.ctl, err);
    }
    if (!rc && kind == ES_TARGET_EM_LOSS) { /* the truth, for the report only */
        if (!(S.full_key = calloc(total, sizeof *S.full_key))) rc = es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "memory");
        if (!rc) rc = es_policy_new("full", &F.p, err);
        if (!rc) rc = lives_new(m, o, F.p, s, n_seg, &F.L, err);
        if (!rc) rc = each_request(&S, "full", full_one, &F);
    }
    double own = NAN;
    if (!rc) es_policy_get_param(P.p, es_controller_param_name(P.ctl), &own, NULL);
    P.value = own;
    if (!rc) rc = each_request(&S, "static", static_one, &P);
    if (!rc) rc = each_request(&S, "controller", controller_one, &P);
    if (!rc) {
        es_sim_row ctl, st;
        char spec[512];
        snprintf(spec, sizeof spec, "%s", es_policy_spec(P.p));
        es_window_log_row(S.log, 0, "controller", spec, NAN, &ctl);
        es_window_log_row(S.log, 1, "static", spec, own, &st);
        report(&S, &ctl, &st, P.ctl, es_controller_param_name(P.ctl));
        if (plot) {
            const es_sim_row *rows[2] = {&ctl, &st};
            const char *names[MAX_SEG];
            for (uint32_t g = 0; g < n_seg; g++) names[g] = es_task_name(s[g].task);
            if (sim_plot_rows(es_outfile_fp(plot), rows, 2, names, n_seg, &S.co, es_controller_param_name(P.ctl)))
                rc = es_error_set(err, ES_EIO, es_outfile_name(plot), 0, "--plot", "write failed (or out of memory)");
            else rc = es_outfile_commit(plot, err), plot = NULL;
        }
        es_sim_row_release(&ctl);
        es_sim_row_release(&st);
    }
    es_outfile_abort(plot);
    lives_free(&P.L);
    lives_free(&F.L);
    es_controller_free(P.ctl);
    es_policy_free(P.p);
    es_policy_free(F.p);
    es_window_log_free(S.log);
    free(S.buf);
    free(S.full_key);
    return rc;
}
