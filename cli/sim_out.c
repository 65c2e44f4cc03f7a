/* sim_out.c - what `earlystop simulate` and `earlystop run --controller`
 * print alike: the target option, a row's windows and summary as JSON, the
 * recovery per shift as text. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sim_out.h"

/* "tokens=B" | "kv=BYTES" | "em-loss=PTS" */
int sim_parse_target(const char *cmd, const char *t, es_target_kind *kind, double *budget)
{
    const char *eq = strchr(t, '=');
    if (!eq) return cli_usage_error(cmd, "--target: '%s' is not tokens=B, kv=BYTES or em-loss=PTS", t);
    size_t n = (size_t)(eq - t);
    const char *v = eq + 1;
    if (n == 6 && !strncmp(t, "tokens", 6)) {
        *kind = ES_TARGET_TOKENS;
        if (cli_parse_double(v, budget) || !(*budget > 0) || !isfinite(*budget))
            return cli_usage_error(cmd, "--target tokens=B: '%s' is not a positive number of tokens", v);
    } else if (n == 2 && !strncmp(t, "kv", 2)) {
        uint64_t x;
        *kind = ES_TARGET_KV;
        if (cli_parse_size(v, 1, UINT64_MAX >> 1, &x))
            return cli_usage_error(cmd, "--target kv=BYTES: '%s' is not a size >= 1 (K, M, G suffixes)", v);
        *budget = (double)x;
    } else if (n == 7 && !strncmp(t, "em-loss", 7)) {
        *kind = ES_TARGET_EM_LOSS;
        if (cli_parse_double(v, budget) || !(*budget > 0 && *budget < 100))
            return cli_usage_error(cmd, "--target em-loss=PTS: '%s' is not points of EM in (0, 100)", v);
        *budget /= 100;
    } else {
        return cli_usage_error(cmd, "--target: '%.*s' is not tokens, kv or em-loss", (int)n, t);
    }
    return 0;
}

const char *sim_kind_name(es_target_kind k)
{
    return k == ES_TARGET_TOKENS ? "tokens" : k == ES_TARGET_KV ? "kv" : "em-loss";
}

void sim_json_num(const char *key, double v, int comma)
{
    if (isfinite(v)) printf("\"%s\":%.6g%s", key, v, comma ? "," : "");
    else printf("\"%s\":null%s", key, comma ? "," : "");
}

static void json_window(const es_sim_window *w)
{
    printf("{\"segment\":%u,\"start\":%llu,\"requests\":%llu,", w->segment, (unsigned long long)w->start,
           (unsigned long long)w->requests);
    sim_json_num("em", w->em, 1);
    sim_json_num("tokens", w->tokens, 1);
    sim_json_num("kv_peak", w->kv_peak, 1);
    sim_json_num("param", w->param, 1);
    sim_json_num("disagreement", w->disagreement, 1);
    sim_json_num("disagreement_lo", w->disagreement_lo, 1);
    sim_json_num("disagreement_hi", w->disagreement_hi, 1);
    sim_json_num("audit_token_share", w->audit_token_share, 1);
    printf("\"audits\":%llu,\"target_met\":%s}", (unsigned long long)w->audits, w->target_met ? "true" : "false");
}

void sim_json_row(const es_sim_row *r)
{
    printf("{\"name\":\"%s\",\"policy\":\"%s\",", r->name, r->spec);
    sim_json_num("param", r->param, 1);
    printf("\"windows\":[");
    for (uint32_t i = 0; i < r->n_windows; i++) {
        if (i) putchar(',');
        json_window(&r->windows[i]);
    }
    const es_sim_summary *s = &r->sum;
    printf("],\"summary\":{\"requests\":%llu,\"audits\":%llu,", (unsigned long long)s->requests,
           (unsigned long long)s->audits);
    sim_json_num("em", s->em, 1);
    sim_json_num("tokens", s->tokens, 1);
    sim_json_num("kv_peak", s->kv_peak, 1);
    sim_json_num("disagreement", s->disagreement, 1);
    sim_json_num("disagreement_late", s->disagreement_late, 1);
    sim_json_num("audit_token_share", s->audit_token_share, 1);
    printf("\"windows\":%u,\"windows_met\":%u,\"recovery_requests\":[", s->windows, s->windows_met);
    for (uint32_t i = 0; i < s->n_recovery; i++) {
        if (i) putchar(',');
        if (s->recovery[i] < 0) printf("null");
        else printf("%lld", (long long)s->recovery[i]);
    }
    printf("]}}");
}

void sim_fmt_recovery(const es_sim_summary *s, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < s->n_recovery && at < cap; i++) {
        if (s->recovery[i] < 0) at += (size_t)snprintf(buf + at, cap - at, "%snever", i ? "," : "");
        else at += (size_t)snprintf(buf + at, cap - at, "%s%lld", i ? "," : "", (long long)s->recovery[i]);
    }
    if (!s->n_recovery) snprintf(buf, cap, "-");
}

void sim_row_name(const es_sim_row *r, char *buf, size_t cap)
{
    if (strcmp(r->name, "anchor")) snprintf(buf, cap, "%s", r->name);
    else snprintf(buf, cap, "%.*s", (int)strcspn(r->spec, ","), r->spec);
}

void sim_fmt_param(const es_sim_row *r, char *buf, size_t cap)
{
    int moves = 0;
    for (uint32_t i = 0; i < r->n_windows && !moves; i++) moves = isfinite(r->windows[i].param);
    if (isfinite(r->param)) snprintf(buf, cap, "%.4g", r->param);
    else snprintf(buf, cap, "%s", moves ? "moving" : "-");
}
