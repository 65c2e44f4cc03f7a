/* live.c - a stopping policy inside the generation loop (see earlystop_lm.h).
 *
 * The event rules mirror es_replay_item (src/replay.c) line by line; keep the
 * two in step: what a replay of a recorded trace decides is what happens here.
 */
#include <stdlib.h>
#include <string.h>

#include "lm_internal.h"

struct es_lm_live {
    const es_lm *m;
    es_policy *p;
    es_interner *in;
    es_lm_gen *g;
    es_answer_type type;
    uint32_t max_samples, max_answers;
    int32_t null_id;          /* reserved id after every interned answer */
    uint32_t limit;           /* token budget, UINT32_MAX when none */
    uint32_t lag;             /* es_policy_probe_lag: probes read one probe point late */
    /* per sample */
    int32_t last;             /* last probe's answer id */
    int32_t read;             /* answer id of the probe last read by the policy */
    int pending;              /* with a lag: a probe made and not yet read */
    es_lm_probe held;         /* that probe (its answer already interned: held_id) */
    int32_t held_id;
    uint32_t probes;
    uint64_t probe_tokens;
};

/* Probing and the token budget are fixed per policy, so they are set once
 * here; the null answer gets an id past the interner's capacity. */
int es_lm_live_new(const es_lm *m, const es_lm_gen_opts *gen, es_policy *p, es_answer_type t,
                   uint32_t max_samples, es_lm_live **out, es_error *err)
{
    if (max_samples < 1) return es_error_set(err, ES_EINVAL, NULL, 0, "samples", "need at least one sample");
    es_lm_live *lv = calloc(1, sizeof *lv);
    if (!lv) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "live run");
    es_lm_gen_opts o = *gen;
    if (!es_policy_probes(p)) o.probe_every = 0;
    lv->limit = es_policy_token_limit(p);
    lv->lag = es_policy_probe_lag(p);
    if (lv->limit != UINT32_MAX) o.max_tokens = lv->limit > (1u << 30) ? 1 << 30 : (int)lv->limit;
    int seq = m->cfg.seq_len, every = o.probe_every > 0 ? o.probe_every : seq;
    lv->m = m;
    lv->p = p;
    lv->type = t;
    lv->max_samples = max_samples;
    lv->max_answers = max_samples * (uint32_t)(seq / every + 2) + 1;
    lv->null_id = (int32_t)lv->max_answers;
    int rc = es_lm_gen_new(m, &o, &lv->g, err);
    /* the key bound is the total of all keys: room for every answer at full length */
    if (!rc && es_interner_new(t, lv->max_answers, (size_t)lv->max_answers * 32, &lv->in))
        rc = es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "interner");
    if (rc) { es_lm_live_free(lv); return rc; }
    *out = lv;
    return ES_OK;
}

/* The policy belongs to the caller and is not freed here. */
void es_lm_live_free(es_lm_live *lv)
{
    if (!lv) return;
    es_lm_gen_free(lv->g);
    es_interner_free(lv->in);
    free(lv);
}

/* Keys let callers compare answers without knowing the id order. */
const char *es_lm_live_key(const es_lm_live *lv, int32_t id)
{
    return id >= 0 && id != lv->null_id ? es_interner_key(lv->in, id) : NULL;
}

/* Per-position cost, for modelling the memory of rounds drawn at once. */
size_t es_lm_live_kv_bytes_per_position(const es_lm_live *lv)
{
    return es_lm_gen_kv_bytes(lv->g) / (size_t)lv->m->cfg.seq_len;
}

/* The null answer has a fixed id past every real one, so that real answers
 * get ids in the order they appear, as in a traceset. */
static int32_t intern_answer(es_lm_live *lv, int has, const char *answer)
{
    if (!has) return lv->null_id;
    int32_t id = es_interner_intern(lv->in, answer);
    return id < 0 ? lv->null_id : id;
}

/* The policy reads one probe (replay.c: read_probe). */
static int read_probe(es_lm_live *lv, const es_lm_probe *pr, int32_t id)
{
    lv->read = id;
    return es_policy_probe(lv->p, pr->at, id, pr->confidence, pr->window_confidence);
}

/* Interns the probed answer and asks the policy; the verdict ends the
 * sample inside the generator, so the tokens after it are never computed.
 * With a lag the held probe is read first, as the chunk after it is out: a
 * stop then ends the sample here, and this probe counts as never made (the
 * generator has computed it before asking: its cost is not charged, as
 * Dynasor would not have launched it). */
static int live_on_probe(void *ctx, const es_lm_probe *pr)
{
    es_lm_live *lv = ctx;
    int rc = lv->lag && lv->pending ? read_probe(lv, &lv->held, lv->held_id) : ES_CONTINUE;
    if (rc == ES_STOP) return ES_STOP;
    lv->last = intern_answer(lv, pr->has_answer, pr->answer);
    lv->probes++;
    lv->probe_tokens += (uint64_t)(pr->cost > 0 ? pr->cost : 0);
    if (lv->lag) {
        lv->held = *pr;
        lv->held_id = lv->last;
        lv->pending = 1;
        return ES_CONTINUE;
    }
    return read_probe(lv, pr, lv->last) == ES_STOP ? ES_STOP : ES_CONTINUE;
}

/* One sample; returns es_policy_end_sample's verdict.  A stopped sample
 * answers what the policy says (else its last probe); a sample cut at the
 * token cap answers its last probe (null if none), as the replay does. */
static int live_sample(es_lm_live *lv, const char *prompt, uint64_t seed, uint64_t item,
                       uint32_t i, es_lm_live_result *out)
{
    es_rng r;
    es_lm_sample_rng(&r, seed, item, i);
    es_lm_gen_hooks h = {NULL, live_on_probe, lv};
    es_lm_sample_result res;
    lv->last = lv->read = lv->null_id;
    lv->pending = 0;
    es_policy_begin_sample(lv->p);
    int rc = es_lm_gen_sample(lv->g, prompt, &r, &h, &res);
    if (rc) return rc;
    int32_t ans;
    if (res.stopped) {
        ans = es_policy_sample_answer(lv->p);
        if (ans < 0) ans = lv->read;
    } else if (!res.ended && lv->limit != UINT32_MAX && res.tokens >= lv->limit) {
        ans = lv->last;
    } else {
        ans = intern_answer(lv, res.has_answer, res.answer);
    }
    out->samples++;
    out->tokens += res.tokens;
    uint32_t held = (uint32_t)strlen(prompt) + 1 + res.tokens + (res.n_probes ? 32u : 0u);
    if (held > out->peak_positions) out->peak_positions = held;
    return es_policy_end_sample(lv->p, ans, res.tokens, res.confidence);
}

/* begin_item, then samples until the policy says stop, then its answer:
 * the event order of es_replay_item. */
int es_lm_live_item(es_lm_live *lv, const char *prompt, const char *gold, uint64_t seed,
                    uint64_t item, es_lm_live_result *out)
{
    memset(out, 0, sizeof *out);
    es_interner_reset(lv->in);
    lv->probes = 0;
    lv->probe_tokens = 0;
    int rc = es_policy_begin_item(lv->p, lv->max_samples, lv->max_answers + 1, lv->null_id);
    for (uint32_t i = 0; !rc && i < lv->max_samples; i++) {
        rc = live_sample(lv, prompt, seed, item, i, out);
        if (rc == ES_STOP) { rc = ES_OK; break; }
    }
    if (rc < 0) return rc;
    out->answer = es_policy_answer(lv->p);
    const char *key = es_lm_live_key(lv, out->answer);
    out->correct = key && gold && es_answer_equal(lv->type, key, gold);
    out->probes = lv->probes;
    out->probe_tokens = lv->probe_tokens;
    return ES_OK;
}
