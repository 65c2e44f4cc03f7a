/* live.c - a stopping policy inside the generation loop (see earlystop_lm.h).
 *
 * The loop drives the policy through an es_session, the same event driver a
 * replay of the recorded trace uses (src/replay/replay.c): the generator
 * reports each probe point (reach) before it computes the probe, the probe
 * when it is made, and the sample's own end; the session settles stops,
 * forced answers and costs.  What a replay decides is therefore what
 * happens here, by construction.
 */
#include <stdlib.h>
#include <string.h>

#include "lm_internal.h"

struct es_lm_live {
    const es_lm *m;
    es_session *s;
    es_interner *in;
    es_lm_gen *g;
    es_answer_type type;
    uint32_t max_samples, max_answers;
    uint8_t *flags;        /* [max_answers] the answers' flags, as a replay reads them */
    int text_probes;       /* probes are free line probes: no positions held for a forced answer */
};

/* Probing and the token budget are fixed per policy, so they are set once
 * here. */
int es_lm_live_new(const es_lm *m, const es_lm_gen_opts *gen, es_policy *p, es_answer_type t,
                   uint32_t max_samples, es_lm_live **out, es_error *err)
{
    if (max_samples < 1) return es_error_set(err, ES_EINVAL, NULL, 0, "samples", "need at least one sample");
    es_lm_live *lv = calloc(1, sizeof *lv);
    if (!lv) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "live run");
    es_policy_info info;
    es_policy_get_info(p, &info);
    es_lm_gen_opts o = *gen;
    if (!info.has_within) o.probe_every = o.probe_lines = 0;
    /* a rule that stops only on cued probes gets text probes whatever it was
     * told: forced ones carry no cues, so they would be paid for and never
     * read, and the replay (es_replay_sample) neither makes nor charges them */
    if (info.needs_cues) {
        o.probe_lines = 1;
        o.probe_every = 0;
    }
    if (info.token_limit != UINT32_MAX) o.max_tokens = info.token_limit > (1u << 30) ? 1 << 30 : (int)info.token_limit;
    int seq = m->cfg.seq_len, every = o.probe_lines ? 1 : o.probe_every > 0 ? o.probe_every : seq;
    lv->m = m;
    lv->type = t;
    lv->max_samples = max_samples;
    lv->text_probes = o.probe_lines;
    /* every sample and every probe a new answer, plus the null answer */
    lv->max_answers = max_samples * (uint32_t)(seq / every + 2) + 1;
    int rc = es_lm_gen_new(m, &o, &lv->g, err);
    /* the key bound is the total of all keys: room for every answer at full length */
    if (!rc && es_interner_new(t, lv->max_answers, (size_t)lv->max_answers * 32, &lv->in))
        rc = es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "interner");
    if (!rc && es_session_new(p, &lv->s)) rc = es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "session");
    if (!rc && !(lv->flags = calloc(lv->max_answers, 1))) rc = es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "flags");
    if (rc) {
        es_lm_live_free(lv);
        return rc;
    }
    *out = lv;
    return ES_OK;
}

int es_lm_live_text_probes(const es_lm_live *lv) { return lv->text_probes; }

/* The policy belongs to the caller and is not freed here. */
void es_lm_live_free(es_lm_live *lv)
{
    if (!lv) return;
    es_session_free(lv->s);
    es_lm_gen_free(lv->g);
    es_interner_free(lv->in);
    free(lv->flags);
    free(lv);
}

/* Keys let callers compare answers without knowing the id order. */
const char *es_lm_live_key(const es_lm_live *lv, int32_t id)
{
    return es_interner_key(lv->in, id);
}

/* Per-position cost, for modelling the memory of rounds drawn at once. */
size_t es_lm_live_kv_bytes_per_position(const es_lm_live *lv)
{
    return es_lm_gen_kv_bytes(lv->g) / (size_t)lv->m->cfg.seq_len;
}

/* An answer the interner cannot hold counts as no answer.  A new answer's
 * flags come from its key, as the trace set computes them on load. */
static int32_t intern_answer(es_lm_live *lv, int has, const char *answer)
{
    if (!has) return ES_NULL_ANSWER;
    uint32_t before = es_interner_count(lv->in);
    int32_t id = es_interner_intern(lv->in, answer);
    if (id < 0) return ES_NULL_ANSWER;
    if ((uint32_t)id >= before)
        lv->flags[id] = es_answer_wellformed(lv->type, es_interner_key(lv->in, id)) ? ES_ANSWER_WELLFORMED : 0;
    return id;
}

/* Before the generator spends tokens on a probe: a lagged read may stop the
 * sample here, and then the probe is never made. */
static int live_on_reach(void *ctx, uint32_t at)
{
    es_lm_live *lv = ctx;
    return es_session_reach(lv->s, at);
}

/* The probe was made: its verdict ends the sample inside the generator, so
 * the tokens after it are never computed. */
static int live_on_probe(void *ctx, const es_lm_probe *pr)
{
    es_lm_live *lv = ctx;
    int32_t id = intern_answer(lv, pr->has_answer, pr->answer);
    int rc = es_session_probe(lv->s, pr->at, id, pr->confidence, pr->window_confidence, pr->cues,
                              (uint32_t)(pr->cost > 0 ? pr->cost : 0));
    return rc == ES_STOP ? ES_STOP : ES_CONTINUE;
}

/* One sample; returns the session's verdict on drawing more. */
static int live_sample(es_lm_live *lv, const char *prompt, uint64_t seed, uint64_t item, uint32_t i,
                       es_lm_live_result *out)
{
    es_rng r;
    es_lm_sample_rng(&r, seed, item, i);
    es_lm_gen_hooks h = {NULL, live_on_probe, live_on_reach, lv};
    es_lm_sample_result res;
    es_session_begin_sample(lv->s);
    int rc = es_lm_gen_sample(lv->g, prompt, &r, &h, &res);
    if (rc) return rc;
    int32_t own = intern_answer(lv, res.has_answer, res.answer);
    /* a forced probe decodes past the sample's end; a text probe holds nothing more */
    uint32_t room = res.n_probes && !lv->text_probes ? ES_LM_PROBE_ROOM : 0u;
    uint32_t held = (uint32_t)strlen(prompt) + 1 + res.tokens + room;
    if (held > out->peak_positions) out->peak_positions = held;
    return es_session_end_sample(lv->s, own, res.tokens, res.confidence, res.ended);
}

/* begin_item, then samples until the session says stop (keeping each as
 * the session settled it when asked), then its answer. */
int es_lm_live_item_record(es_lm_live *lv, const char *prompt, const char *gold, uint64_t seed, uint64_t item,
                           es_lm_live_result *out, es_lm_live_sample *samples, uint32_t *n)
{
    memset(out, 0, sizeof *out);
    if (n) *n = 0;
    es_interner_reset(lv->in);
    int rc = es_session_begin_item(lv->s, lv->max_samples, lv->max_answers);
    uint64_t probe_before = 0;
    if (!rc) es_session_set_answer_flags(lv->s, lv->flags);
    for (uint32_t i = 0; !rc && i < lv->max_samples; i++) {
        rc = live_sample(lv, prompt, seed, item, i, out);
        if (rc >= 0 && samples) {
            es_lm_live_sample *k = &samples[i];
            es_session_last_sample(lv->s, &k->answer, &k->tokens);
            uint64_t probes = es_session_outcome(lv->s)->probe_tokens;
            k->probe_tokens = (uint32_t)(probes - probe_before);
            probe_before = probes;
            if (n) *n = i + 1;
        }
        if (rc == ES_STOP) {
            rc = ES_OK;
            break;
        }
    }
    if (rc < 0) return rc;
    const es_outcome *o = es_session_end_item(lv->s);
    out->answer = o->answer;
    out->samples = o->samples;
    out->tokens = o->tokens;
    out->probes = o->probes;
    out->probe_tokens = o->probe_tokens;
    const char *key = es_lm_live_key(lv, out->answer);
    out->correct = key && gold && es_answer_equal(lv->type, key, gold);
    return ES_OK;
}

int es_lm_live_item(es_lm_live *lv, const char *prompt, const char *gold, uint64_t seed, uint64_t item,
                    es_lm_live_result *out)
{
    return es_lm_live_item_record(lv, prompt, gold, seed, item, out, NULL, NULL);
}

uint32_t es_lm_live_max_answers(const es_lm_live *lv) { return lv->max_answers; }
