/*
 * family.c - the families `earlystop tune` searches: a rule (or a
 * within-sample rule with an across-sample one) with the parameter its
 * decision compares swept exactly (sweep.c), and up to two others on a
 * grid.  The grids are small on purpose: the exact sweep does the fine
 * work, the grid only the discrete choices (a minimum sample count, a
 * window, a k).  Every rule that answers its vote's leader is tuned with
 * clinch=on: stopping once the leader cannot be caught never moves the
 * answer away from the full run's, so it only saves tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune_int.h"

enum { NEEDS_PROBES = 1, NEEDS_PROBE_CONF = 2, NEEDS_WINDOW_CONF = 4, NEEDS_SAMPLES = 8 };

typedef struct family_def {
    const char *name, *doc;
    const char *base;              /* the spec every configuration starts from */
    const char *grid[2];           /* "key=v1|v2|..." (key may be rule.key), or NULL */
    unsigned needs;
} family_def;

static const family_def families[] = {
    {"ac-beta", "Adaptive-Consistency (Beta): threshold swept, min on a grid", "ac-beta:clinch=on", {"min=1|2|3|4", NULL},
     NEEDS_SAMPLES},
    {"ac-dirichlet", "Adaptive-Consistency (Dirichlet): threshold swept, min on a grid", "ac-dirichlet:clinch=on",
     {"min=1|2", NULL}, NEEDS_SAMPLES},
    {"majority", "leader's share: fraction swept, min on a grid", "majority:clinch=on", {"min=1|2|3", NULL}, NEEDS_SAMPLES},
    {"entropy", "vote entropy: threshold swept, min on a grid", "entropy:clinch=on", {"min=2|3", NULL}, NEEDS_SAMPLES},
    {"margin", "leader's lead: m swept, min on a grid", "margin:clinch=on", {"min=1|2|3", NULL}, NEEDS_SAMPLES},
    {"esc", "ESC: window on a grid", "esc", {"window=2|3|4|5|6|8|10", NULL}, NEEDS_SAMPLES},
    {"budget", "a sample cap on a grid", "budget:samples=1,clinch=on",
     {"samples=1|2|3|4|5|6|8|10|12|16|20|24|32|40|48|64|80|120|160", NULL}, NEEDS_SAMPLES},
    {"deer", "DEER: probe confidence threshold on a grid", "deer", {"threshold=0.5|0.7|0.8|0.9|0.95|0.99", NULL},
     NEEDS_PROBES | NEEDS_PROBE_CONF},
    {"dynasor", "Dynasor: k on a grid", "dynasor", {"k=2|3|4|5", NULL}, NEEDS_PROBES},
    {"convergence", "probed answer repeats: m on a grid", "convergence", {"m=1|2|3|4", NULL}, NEEDS_PROBES},
    {"deepconf", "DeepConf online: eta and warmup on a grid", "deepconf",
     {"eta=10|90", "warmup=4|8|16"}, NEEDS_WINDOW_CONF},
    {"dynasor+ac-beta", "Dynasor within, AC-beta across: k on a grid, threshold swept", "dynasor+ac-beta:clinch=on",
     {"dynasor.k=2|3|4", NULL}, NEEDS_PROBES | NEEDS_SAMPLES},
    {"dynasor+margin", "Dynasor within, margin across: k on a grid, m swept", "dynasor+margin:clinch=on",
     {"dynasor.k=2|3|4", NULL}, NEEDS_PROBES | NEEDS_SAMPLES},
};
enum { N_FAMILIES = sizeof families / sizeof families[0] };

size_t tn_family_count(void) { return N_FAMILIES; }

const char *tn_family_name(size_t i, const char **doc)
{
    if (i >= N_FAMILIES) return NULL;
    if (doc) *doc = families[i].doc;
    return families[i].name;
}

size_t es_tune_n_known_families(void) { return N_FAMILIES; }
const char *es_tune_known_family(size_t i, const char **doc) { return tn_family_name(i, doc); }

/* What the data offers: probes everywhere, their confidences, samples > 1. */
static unsigned data_offers(const es_tune_data *d)
{
    unsigned all_probes = 1, conf = 1, wconf = 1, samples = 0;
    for (size_t f = 0; f < d->n_files; f++) {
        const es_traceset *ts = d->files[f].ts;
        if (es_traceset_n_probes(ts) == 0) all_probes = conf = wconf = 0;
        uint32_t ms, ma;
        es_traceset_max_sizes(ts, &ms, &ma);
        if (ms > 1) samples = 1;
        /* a probe confidence anywhere in the file counts (the rules say so per item) */
        int c = 0, wc = 0;
        for (size_t i = 0; i < es_traceset_n_items(ts) && !(c && wc); i++) {
            es_item_view v;
            es_traceset_item(ts, i, &v);
            for (uint32_t j = v.probe_off[0]; j < v.probe_off[v.n_samples]; j++) {
                c |= v.probe_confidence[j] == v.probe_confidence[j];
                wc |= v.probe_window_confidence[j] == v.probe_window_confidence[j];
            }
        }
        conf &= (unsigned)c;
        wconf &= (unsigned)wc;
    }
    return (all_probes ? NEEDS_PROBES : 0u) | (conf ? NEEDS_PROBE_CONF : 0u) | (wconf ? NEEDS_WINDOW_CONF : 0u) |
           (samples ? NEEDS_SAMPLES : 0u);
}

static const char *need_text(unsigned missing)
{
    if (missing & NEEDS_PROBES) return "it decides on probes and some of these traces have none";
    if (missing & NEEDS_PROBE_CONF) return "it needs probe confidences and these traces carry none";
    if (missing & NEEDS_WINDOW_CONF) return "it needs window confidences and these traces carry none";
    return "it decides across samples and these traces have one sample per item";
}

/* Values of a grid dimension "key=a|b|c" (n at most cap). */
static size_t grid_values(const char *g, char *key, size_t key_cap, char vals[][32], size_t cap)
{
    const char *eq = strchr(g, '=');
    snprintf(key, key_cap, "%.*s", (int)(eq - g), g);
    size_t n = 0;
    for (const char *p = eq + 1; *p && n < cap; n++) {
        size_t len = strcspn(p, "|");
        snprintf(vals[n], 32, "%.*s", (int)len, p);
        p += len + (p[len] == '|');
    }
    return n;
}

void tn_configs_free(tn_config *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++) es_policy_free(c[i].proto);
    free(c);
}

/* One configuration per grid cell; the swept key is the across rule's. */
static int make_configs(const family_def *fd, uint32_t max_samples, tn_config **out, size_t *n, es_error *err)
{
    char k1[64] = "", k2[64] = "", v1[24][32], v2[24][32];
    size_t n1 = fd->grid[0] ? grid_values(fd->grid[0], k1, sizeof k1, v1, 24) : 1;
    size_t n2 = fd->grid[1] ? grid_values(fd->grid[1], k2, sizeof k2, v2, 24) : 1;
    tn_config *c = calloc(n1 * n2, sizeof *c);
    if (!c) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    size_t m = 0;
    int rc = ES_OK;
    for (size_t a = 0; a < n1 && !rc; a++)
        for (size_t b = 0; b < n2 && !rc; b++) {
            /* a sample cap past every item's samples is the same point as `full` */
            if (!strcmp(k1, "samples") && (uint32_t)atoi(v1[a]) > max_samples) continue;
            es_policy *p;
            if ((rc = es_policy_new(fd->base, &p, err))) break;
            if (fd->grid[0]) rc = es_policy_set_param_text(p, k1, v1[a], err);
            if (!rc && fd->grid[1]) rc = es_policy_set_param_text(p, k2, v2[b], err);
            if (rc) {
                es_policy_free(p);
                break;
            }
            c[m].proto = p;
            snprintf(c[m].family, sizeof c[m].family, "%s", fd->name);
            const char *key;
            c[m].sweep_key = es_policy_sweep_param(p, &key) == ES_OK ? key : NULL;
            m++;
        }
    if (rc) {
        tn_configs_free(c, m);
        return rc;
    }
    *out = c;
    *n = m;
    return ES_OK;
}

int tn_family_configs(const char *name, const es_tune_data *d, tn_config **out, size_t *n, es_error *err)
{
    *out = NULL;
    *n = 0;
    const family_def *fd = NULL;
    for (size_t i = 0; i < N_FAMILIES && !fd; i++)
        if (!strcmp(families[i].name, name)) fd = &families[i];
    if (!fd) {
        char list[512];
        size_t at = 0;
        for (size_t i = 0; i < N_FAMILIES && at < sizeof list; i++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", families[i].name);
        return es_error_set(err, ES_EINVAL, "", 0, "--family", "unknown family '%s' (known: %s, all)", name, list);
    }
    unsigned missing = fd->needs & ~data_offers(d);
    if (missing)
        return es_error_set(err, ES_ENOTSUP, "", 0, "--family", "family '%s' does not apply: %s", name,
                            need_text(missing));
    uint32_t max_samples = 1;
    for (size_t f = 0; f < d->n_files; f++) {
        uint32_t ms, ma;
        es_traceset_max_sizes(d->files[f].ts, &ms, &ma);
        if (ms > max_samples) max_samples = ms;
    }
    return make_configs(fd, max_samples, out, n, err);
}

int tn_family_applies(const char *name, const es_tune_data *d)
{
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (!strcmp(families[i].name, name)) return (families[i].needs & ~data_offers(d)) == 0;
    return 0;
}
