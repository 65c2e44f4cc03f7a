/*
 * ctl_state.c - the controller's state as named arrays of numbers, so that
 * the io layer can save it as JSON and a restarted server picks up where it
 * stopped (es_controller_save / es_controller_load in earlystop_io.h).  One
 * table lists every field; export and import walk it.  The candidates and
 * the unit the costs were measured in must match the controller a state is
 * loaded into; the budget may differ (the estimates describe the traffic,
 * not the target).  Audits kept for late labels are not saved: a label for
 * a request before the restart is not used.
 */
#include <math.h>
#include <string.h>

#include "controller_int.h"

typedef struct ctl_field {
    const char *name;
    double *v;
    uint32_t n;
} ctl_field;

/* Fields after "candidates" and "unit", which import checks. */
static uint32_t fields(es_controller *c, ctl_field *f)
{
    uint32_t k = 0, n = c->n;
#define F(name, ptr, len) f[k++] = (ctl_field){name, ptr, len}
    F("position", &c->x, 1);
    F("cost_weight", c->cw, n);
    F("cost_sum", c->cs, n);
    F("cost_sumsq", c->cq, n);
    F("disagreement_weight", c->dw, n);
    F("disagreement_sum", c->ds, n);
    F("pair_weight", c->pw, n * n);
    F("pair_sum", c->ps, n * n);
    F("disagreement_log_scale", &c->log_scale_d, 1);
    F("served_audit_disagreements", &c->sk, 1);
    F("served_audits", &c->sm, 1);
    F("served_weight", &c->served_w, 1);
    F("served_cost", &c->served_s, 1);
    F("audit_weight", &c->audit_w, 1);
    F("audit_cost", &c->audit_cost_s, 1);
    F("shadow_weight", &c->shadow_w, 1);
    F("shadow_tokens", &c->shadow_s, 1);
    F("tokens_all", &c->tok_all, 1);
    F("tokens_audit", &c->tok_audit, 1);
    F("audit_boost", &c->boost, 1);
    F("bernoulli_cusum", &c->bern, 1);
    F("feature_cusum", &c->feat[0].w, (uint32_t)(sizeof c->feat / (sizeof(double))));
    F("requests", &c->requests, 1);
    F("audits", &c->audits, 1);
    F("shifts", &c->shifts, 1);
    F("fallbacks", &c->fallbacks, 1);
    F("since_restart", &c->since_restart, 1);
#undef F
    return k;
}

enum { MAX_FIELDS = 32 };

/* What the costs are measured in: tokens, or KV bytes at this many bytes
 * per position. */
static void unit(const es_controller *c, double u[2])
{
    u[0] = c->kind == ES_TARGET_KV;
    u[1] = c->kind == ES_TARGET_KV ? c->kv_bpp : 0;
}

int es_controller_export(es_controller *c, int (*put)(void *ctx, const char *name, const double *v, uint32_t n),
                         void *ctx)
{
    ctl_field f[MAX_FIELDS];
    double u[2];
    pthread_mutex_lock(&c->mu);
    unit(c, u);
    int rc = put(ctx, "candidates", c->cand, c->n);
    if (!rc) rc = put(ctx, "unit", u, 2);
    uint32_t k = fields(c, f);
    for (uint32_t i = 0; i < k && !rc; i++) rc = put(ctx, f[i].name, f[i].v, f[i].n);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int check_fixed(es_controller *c, const char *name, const double *v, uint32_t n, es_error *err)
{
    if (!strcmp(name, "candidates")) {
        int same = n == c->n;
        for (uint32_t i = 0; same && i < n; i++) same = fabs(v[i] - c->cand[i]) <= 1e-12 * (1 + fabs(c->cand[i]));
        if (!same)
            return es_error_set(err, ES_EINVAL, "", 0, "candidates",
                                "the state was saved for other candidates of %s (%u values, from %g); give the same",
                                c->key, n, n ? v[0] : NAN);
        return ES_OK;
    }
    double u[2];
    unit(c, u);
    if (n != 2 || v[0] != u[0] || fabs(v[1] - u[1]) > 1e-9 * (1 + u[1]))
        return es_error_set(err, ES_EINVAL, "", 0, "unit",
                            "the state measured costs in %s, this controller in %s", n == 2 && v[0] ? "KV bytes" : "tokens",
                            u[0] ? "KV bytes" : "tokens");
    return ES_OK;
}

int es_controller_import(es_controller *c, const char *name, const double *v, uint32_t n, es_error *err)
{
    if (!strcmp(name, "candidates") || !strcmp(name, "unit")) return check_fixed(c, name, v, n, err);
    ctl_field f[MAX_FIELDS];
    pthread_mutex_lock(&c->mu);
    uint32_t k = fields(c, f);
    int rc = es_error_set(err, ES_EINVAL, "", 0, name, "not a field of the controller's state");
    for (uint32_t i = 0; i < k; i++) {
        if (strcmp(f[i].name, name)) continue;
        rc = ES_OK;
        if (n != f[i].n) {
            rc = es_error_set(err, ES_EINVAL, "", 0, name, "%u values, expected %u", n, f[i].n);
            break;
        }
        /* every field but the log scale counts or sums something */
        int signed_ok = f[i].v == &c->log_scale_d;
        for (uint32_t j = 0; j < n && !rc; j++)
            if (!isfinite(v[j]) || fabs(v[j]) > 1e30 || (!signed_ok && v[j] < 0))
                rc = es_error_set(err, ES_EINVAL, "", 0, name, "value %u (%g) is not a count or sum", j, v[j]);
        if (!rc && f[i].v == &c->x && (v[0] < 0 || v[0] > c->n - 1))
            rc = es_error_set(err, ES_EINVAL, "", 0, name, "position %g outside [0, %u]", v[0], c->n - 1);
        if (!rc) memcpy(f[i].v, v, n * sizeof *v);
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}
