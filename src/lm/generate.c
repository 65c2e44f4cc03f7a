/* generate.c - sampling one chain of thought, with probes that fork it.
 *
 * A probe appends the answer cue to the running sequence, decodes the answer
 * greedily, then rolls the KV cache back: the cache is indexed by position,
 * so rolling back is resuming at the old position with the logits saved
 * before the probe.  Probes draw nothing from the sampling stream, so the
 * sample is the same with or without them (tests/test_model.c checks it).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_internal.h"

/* Positions kept free at the end of the context so that a probe always fits
 * (cue + answer); the same with and without probes, so texts agree. */
enum { PROBE_ROOM = 32, PROBE_MAX_ANSWER = 12 };

struct es_lm_gen {
    const es_lm *m;
    es_lm_gen_opts o;
    es_lm_state *s;
    float *saved;     /* [vocab] logits of the main stream during a probe */
    float *probs;     /* [vocab] */
    float *win;       /* [window] ring of token confidences */
    int *toks;        /* [seq_len] */
    char *text;       /* [seq_len + 1] */
    float *mem;
};

/* Defaults shared by generate, run and the bench so that their figures
 * describe the same sampler. */
void es_lm_gen_opts_default(es_lm_gen_opts *o)
{
    o->temperature = ES_LM_DEFAULT_TEMPERATURE;
    o->probe_every = 0;
    o->max_tokens = 0;
    o->window = 32;
    o->conf_topk = 5;
}

/* Everything a sample needs is allocated here once: drawing samples then
 * allocates nothing. */
int es_lm_gen_new(const es_lm *m, const es_lm_gen_opts *opts, es_lm_gen **out, es_error *err)
{
    const es_lm_config *c = &m->cfg;
    if (opts->temperature < 0 || opts->probe_every < 0 || opts->max_tokens < 0 ||
        opts->window < 1 || opts->conf_topk < 1 || opts->conf_topk > c->vocab_size)
        return es_error_set(err, ES_EINVAL, NULL, 0, "options", "bad generation options");
    if (c->seq_len <= PROBE_ROOM + 2)
        return es_error_set(err, ES_EINVAL, NULL, 0, "seq_len", "context too short to generate");
    es_lm_gen *g = calloc(1, sizeof *g);
    if (!g) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "generator");
    size_t V = (size_t)c->vocab_size, T = (size_t)c->seq_len, W = (size_t)opts->window;
    g->m = m;
    g->o = *opts;
    g->mem = calloc(2 * V + W, sizeof(float));
    g->toks = calloc(T, sizeof(int));
    g->text = calloc(T + 1, 1);
    if (!g->mem || !g->toks || !g->text || es_lm_state_new(m, &g->s)) {
        es_lm_gen_free(g);
        return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "generator buffers");
    }
    g->saved = g->mem;
    g->probs = g->mem + V;
    g->win = g->mem + 2 * V;
    *out = g;
    return ES_OK;
}

/* Releases the state and the buffers; NULL is a no-op. */
void es_lm_gen_free(es_lm_gen *g)
{
    if (!g) return;
    es_lm_state_free(g->s);
    free(g->mem);
    free(g->toks);
    free(g->text);
    free(g);
}

/* Memory reports go through the generator so callers need not see the state. */
size_t es_lm_gen_kv_bytes(const es_lm_gen *g) { return es_lm_state_kv_bytes(g->s); }

/* Ties go to the lower token id: greedy decoding must be deterministic. */
static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

/* probs = softmax(logits / temperature) (temperature 0 counts as 1 here:
 * greedy picks the argmax but probabilities stay meaningful). */
static void scaled_softmax(float *probs, const float *logits, int n, float temp)
{
    float inv = temp > 0 ? 1.0f / temp : 1.0f;
    for (int i = 0; i < n; i++) probs[i] = logits[i] * inv;
    es_k_softmax_fast(probs, n);
}

/* DeepConf token confidence: minus the mean log-probability of the k most
 * likely tokens (high when the distribution is peaked). */
static float token_confidence(const float *probs, int n, int k)
{
    float top[64];
    int m = 0;
    if (k > 64) k = 64;
    for (int i = 0; i < n; i++) {
        float p = probs[i];
        if (m < k) top[m++] = p;
        else {
            int lo = 0;
            for (int j = 1; j < m; j++) if (top[j] < top[lo]) lo = j;
            if (p > top[lo]) top[lo] = p;
        }
    }
    float s = 0.0f;
    for (int j = 0; j < m; j++) s += logf(top[j] > 1e-30f ? top[j] : 1e-30f);
    return -s / (float)m;
}

/* Inverse-CDF draw: exactly one uniform per token, so streams stay aligned. */
static int sample_token(const float *probs, int n, es_rng *r)
{
    float u = es_rng_float(r), c = 0.0f;
    for (int i = 0; i < n; i++) {
        c += probs[i];
        if (u < c) return i;
    }
    return n - 1;
}

/* Feed the cue, decode the answer greedily, restore the logits.  pos is
 * where the main stream continues; nothing after it survives the probe. */
static void run_probe(es_lm_gen *g, int pos, uint32_t at, int after_newline, es_lm_probe *p)
{
    const es_lm *m = g->m;
    int V = m->cfg.vocab_size;
    const float *logits = NULL;
    memcpy(g->saved, g->s->logits, (size_t)V * sizeof(float));
    const char *cue = ES_LM_ANSWER_CUE;
    int cost = 0;
    if (!after_newline) logits = es_lm_forward(m, g->s, es_lm_char_token('\n'), pos + cost++);
    for (const char *c = cue; *c; c++) logits = es_lm_forward(m, g->s, es_lm_char_token(*c), pos + cost++);
    memset(p, 0, sizeof *p);
    p->at = at;
    float psum = 0.0f;
    int n = 0, ended = 0;
    while (n < PROBE_MAX_ANSWER) {
        scaled_softmax(g->probs, logits, V, 1.0f);
        int tok = argmax(g->probs, V);
        psum += g->probs[tok];
        cost++;
        int ch = es_lm_token_char(tok);
        if (ch == '.' || ch == '\n' || ch == '\0') { ended = ch == '.'; break; }
        if (n < (int)sizeof p->answer - 1) p->answer[n] = (char)ch;
        n++;
        if (n < PROBE_MAX_ANSWER) logits = es_lm_forward(m, g->s, tok, pos + cost - 1);
    }
    p->answer[n < (int)sizeof p->answer ? n : (int)sizeof p->answer - 1] = '\0';
    p->has_answer = ended && n > 0;
    if (!p->has_answer) p->answer[0] = '\0';
    p->confidence = psum / (float)(n + (n < PROBE_MAX_ANSWER));
    p->cost = cost;
    memcpy(g->s->logits, g->saved, (size_t)V * sizeof(float));
}

/* Mean over the ring of the last `window` token confidences (fewer at the
 * start): DeepConf's group confidence at this point of the sample. */
static float window_mean(const es_lm_gen *g, uint32_t n_gen)
{
    uint32_t w = n_gen < (uint32_t)g->o.window ? n_gen : (uint32_t)g->o.window;
    if (!w) return NAN;
    float s = 0.0f;
    for (uint32_t i = 0; i < w; i++) s += g->win[i];
    return s / (float)w;
}

/* Prompt: BOS, then the text.  Returns the next position or an error. */
static int feed_prompt(es_lm_gen *g, const char *prompt)
{
    int T = g->m->cfg.seq_len;
    g->toks[0] = ES_LM_BOS;
    int n = es_lm_encode(prompt, g->toks + 1, (size_t)(T - 1));
    if (n < 0) return n;
    if (n + 1 + PROBE_ROOM + 1 > T) return ES_ERANGE;
    for (int i = 0; i <= n; i++) es_lm_forward(g->m, g->s, g->toks[i], i);
    return n + 1;
}

/* A probe and its bookkeeping; the hook decides whether the sample goes on. */
static int do_probe(es_lm_gen *g, const es_lm_gen_hooks *h, int pos, uint32_t n_gen,
                    size_t tlen, es_lm_sample_result *out)
{
    es_lm_probe p;
    run_probe(g, pos, n_gen, tlen == 0 || g->text[tlen - 1] == '\n', &p);
    p.window_confidence = window_mean(g, n_gen);
    out->n_probes++;
    out->probe_tokens += (uint32_t)p.cost;
    return h && h->on_probe ? h->on_probe(h->ctx, &p) : ES_CONTINUE;
}

/* The sampling loop: probe when due, then sample one token from the
 * current logits with one uniform, then feed it.  The limit keeps PROBE_ROOM
 * positions free whether or not probes are on, so texts never depend on
 * probing. */
int es_lm_gen_sample(es_lm_gen *g, const char *prompt, es_rng *rng,
                     const es_lm_gen_hooks *h, es_lm_sample_result *out)
{
    const es_lm *m = g->m;
    int V = m->cfg.vocab_size, T = m->cfg.seq_len;
    memset(out, 0, sizeof *out);
    int pos = feed_prompt(g, prompt);
    if (pos < 0) return pos;
    int limit = T - PROBE_ROOM - pos;
    if (g->o.max_tokens > 0 && g->o.max_tokens < limit) limit = g->o.max_tokens;
    uint32_t n_gen = 0;
    size_t tlen = 0;
    double psum = 0.0;
    int eos = 0;
    while ((int)n_gen < limit) {
        if (g->o.probe_every > 0 && n_gen > 0 && n_gen % (uint32_t)g->o.probe_every == 0 &&
            do_probe(g, h, pos, n_gen, tlen, out) == ES_STOP) {
            out->stopped = 1;
            break;
        }
        scaled_softmax(g->probs, g->s->logits, V, g->o.temperature);
        int tok = g->o.temperature > 0 ? sample_token(g->probs, V, rng) : argmax(g->probs, V);
        float tc = token_confidence(g->probs, V, g->o.conf_topk);
        g->win[n_gen % (uint32_t)g->o.window] = tc;
        psum += g->probs[tok];
        n_gen++;
        if (h && h->on_token) h->on_token(h->ctx, tok, logf(g->probs[tok] + 1e-30f), tc);
        if (tok == ES_LM_EOS || es_lm_token_char(tok) == '\0') { eos = 1; break; }
        g->text[tlen++] = (char)es_lm_token_char(tok);
        es_lm_forward(m, g->s, tok, pos++);
    }
    /* cut at the limit: the probe due there is still made, as a replay of a
     * token budget feeds the probes at or before the cap */
    if (!eos && !out->stopped && n_gen > 0 && (int)n_gen >= limit && g->o.probe_every > 0 &&
        n_gen % (uint32_t)g->o.probe_every == 0 && do_probe(g, h, pos, n_gen, tlen, out) == ES_STOP)
        out->stopped = 1;
    g->text[tlen] = '\0';
    out->tokens = n_gen;
    out->ended = eos;
    out->confidence = n_gen ? (float)(psum / n_gen) : NAN;
    out->has_answer = es_task_extract_answer(g->text, out->answer, sizeof out->answer);
    out->text = g->text;
    return ES_OK;
}
