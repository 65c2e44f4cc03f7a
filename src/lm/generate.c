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
enum { PROBE_ROOM = ES_LM_PROBE_ROOM, PROBE_MAX_ANSWER = 12, GEN_MAX_BATCH = 4096 };

struct es_lm_gen;
static int texts_reserve(struct es_lm_gen *g, int n);

/* Where a sample is in its loop between two forward steps. */
typedef enum lane_phase {
    LANE_MAIN,        /* logits are the main stream's: probe if due, else sample */
    LANE_PROBE_CUE,   /* feeding the answer cue */
    LANE_PROBE_ANS,   /* decoding the probe's answer greedily */
    LANE_DONE
} lane_phase;

/* One sample of a batch: its state, buffers and the loop's variables, so
 * that the loop can stop wherever it needs a forward step and resume after
 * it (the samples of a batch share each step). */
typedef struct gen_lane {
    es_lm_state *s;
    float *logits;     /* [vocab] of this sample's last forward */
    float *saved;      /* [vocab] main-stream logits during a probe */
    float *probs;      /* [vocab] */
    float *win;        /* [window] ring of token confidences */
    char *text;        /* [seq_len + 1] */
    es_rng *rng;
    const es_lm_gen_hooks *h;
    es_lm_sample_result *out;
    int sample;        /* which sample of the call the lane draws */
    lane_phase phase;
    int pos, limit, tlen, eos;
    uint32_t n_gen;
    double psum;
    int probed;        /* the probe due at n_gen has been made */
    int line_due;      /* probe_lines: the last token ended a line */
    int final_probe;   /* the probe in flight is the one at the token limit */
    /* the probe in flight */
    es_lm_probe pr;
    int cost, cue_i, ans_n;
    float ans_psum;
    /* the forward step asked for */
    int feed_tok, feed_pos;
} gen_lane;

struct es_lm_gen {
    const es_lm *m;
    es_lm_gen_opts o;
    gen_lane *lanes;   /* [batch] */
    es_lm_rows rows;   /* workspace of max(batch, seq_len) rows */
    es_lm_state **st;  /* [rows.cap] per-row state pointers of a step */
    gen_lane **req;    /* [batch] lanes of a step */
    int *ftok, *fpos;  /* [rows.cap] */
    int *toks;         /* [seq_len] the encoded prompt */
    float *plogits;    /* [vocab] logits after the prompt */
    float *mem;        /* per-lane float buffers */
    char *textmem;
    char *texts;       /* [texts_cap][seq_len + 1] texts of the last call's samples */
    int texts_cap;
};

/* Defaults shared by generate, run and the bench so that their figures
 * describe the same sampler. */
void es_lm_gen_opts_default(es_lm_gen_opts *o)
{
    o->temperature = ES_LM_DEFAULT_TEMPERATURE;
    o->probe_every = 0;
    o->probe_lines = 0;
    o->max_tokens = 0;
    o->window = 32;
    o->conf_topk = 5;
    o->batch = 1;
    o->pool = NULL;
}

/* Everything a batch of samples needs is allocated here once: drawing
 * samples then allocates nothing. */
int es_lm_gen_new(const es_lm *m, const es_lm_gen_opts *opts, es_lm_gen **out, es_error *err)
{
    const es_lm_config *c = &m->cfg;
    if (opts->temperature < 0 || opts->probe_every < 0 || opts->max_tokens < 0 ||
        (opts->probe_lines && opts->probe_every) ||
        opts->window < 1 || opts->conf_topk < 1 || opts->conf_topk > c->vocab_size ||
        opts->batch < 1 || opts->batch > GEN_MAX_BATCH)
        return es_error_set(err, ES_EINVAL, NULL, 0, "options", "bad generation options");
    if (c->seq_len <= PROBE_ROOM + 2)
        return es_error_set(err, ES_EINVAL, NULL, 0, "seq_len", "context too short to generate");
    es_lm_gen *g = calloc(1, sizeof *g);
    if (!g) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "generator");
    size_t V = (size_t)c->vocab_size, T = (size_t)c->seq_len, W = (size_t)opts->window;
    size_t B = (size_t)opts->batch, cap = B > T ? B : T;
    g->m = m;
    g->o = *opts;
    g->lanes = calloc(B, sizeof *g->lanes);
    g->st = calloc(cap, sizeof *g->st);
    g->req = calloc(B, sizeof *g->req);
    g->ftok = calloc(cap, sizeof(int));
    g->fpos = calloc(cap, sizeof(int));
    g->toks = calloc(T, sizeof(int));
    g->mem = calloc(B * (3 * V + W) + V, sizeof(float));
    g->textmem = calloc(B * (T + 1), 1);
    int bad = !g->lanes || !g->st || !g->req || !g->ftok || !g->fpos || !g->toks || !g->mem ||
              !g->textmem || es_lm_rows_init(&g->rows, c, (int)cap) || texts_reserve(g, (int)B);
    if (!bad) g->plogits = g->mem + B * (3 * V + W);
    for (size_t i = 0; !bad && i < B; i++) {
        gen_lane *l = &g->lanes[i];
        float *f = g->mem + i * (3 * V + W);
        l->logits = f;
        l->saved = f + V;
        l->probs = f + 2 * V;
        l->win = f + 3 * V;
        l->text = g->textmem + i * (T + 1);
        bad = es_lm_state_new(m, &l->s) != ES_OK;
    }
    if (bad) {
        es_lm_gen_free(g);
        return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "generator buffers");
    }
    *out = g;
    return ES_OK;
}

/* Releases the states and the buffers; NULL is a no-op. */
void es_lm_gen_free(es_lm_gen *g)
{
    if (!g) return;
    for (int i = 0; g->lanes && i < g->o.batch; i++) es_lm_state_free(g->lanes[i].s);
    es_lm_rows_free(&g->rows);
    free(g->lanes);
    free(g->st);
    free(g->req);
    free(g->ftok);
    free(g->fpos);
    free(g->toks);
    free(g->mem);
    free(g->textmem);
    free(g->texts);
    free(g);
}

/* Memory reports go through the generator so callers need not see the state:
 * the cache one sample holds. */
size_t es_lm_gen_kv_bytes(const es_lm_gen *g) { return es_lm_state_kv_bytes(g->lanes[0].s); }

/* Ties go to the lower token id: greedy decoding must be deterministic. */
int es_lm_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

/* probs = softmax(logits / temperature) (temperature 0 counts as 1 here:
 * greedy picks the argmax but probabilities stay meaningful). */
void es_lm_scaled_softmax(float *probs, const float *logits, int n, float temp)
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
int es_lm_sample_token(const float *probs, int n, es_rng *r)
{
    float u = es_rng_float(r), c = 0.0f;
    for (int i = 0; i < n; i++) {
        c += probs[i];
        if (u < c) return i;
    }
    return n - 1;
}

/* Mean over the ring of the last `window` token confidences (fewer at the
 * start): DeepConf's group confidence at this point of the sample. */
static float window_mean(const es_lm_gen *g, const gen_lane *l)
{
    uint32_t n_gen = l->n_gen, w = n_gen < (uint32_t)g->o.window ? n_gen : (uint32_t)g->o.window;
    if (!w) return NAN;
    float s = 0.0f;
    for (uint32_t i = 0; i < w; i++) s += l->win[i];
    return s / (float)w;
}

/* Ask for a forward step: `tok` at `pos` of this sample's cache. */
static void lane_feed(gen_lane *l, int tok, int pos)
{
    l->feed_tok = tok;
    l->feed_pos = pos;
}

/* A probe: save the main logits, append the cue (after a newline if the
 * sample is mid-line) at the positions after the sample, decode the answer
 * greedily, then restore the logits.  The cache is indexed by position, so
 * what the probe wrote is overwritten as the sample goes on: rolling back is
 * free.  Probes draw nothing from the sampling stream. */
static void probe_start(es_lm_gen *g, gen_lane *l)
{
    size_t V = (size_t)g->m->cfg.vocab_size;
    memcpy(l->saved, l->logits, V * sizeof(float));
    memset(&l->pr, 0, sizeof l->pr);
    l->pr.at = l->n_gen;
    l->cost = 0;
    l->cue_i = 0;
    l->ans_n = 0;
    l->ans_psum = 0.0f;
    l->phase = LANE_PROBE_CUE;
    int after_newline = l->tlen == 0 || l->text[l->tlen - 1] == '\n';
    if (!after_newline) lane_feed(l, es_lm_char_token('\n'), l->pos + l->cost++);
    else lane_feed(l, es_lm_char_token(ES_LM_ANSWER_CUE[l->cue_i++]), l->pos + l->cost++);
}

/* The probe's answer is decoded: fill it in, restore the main logits and
 * ask the hook.  Returns the hook's verdict. */
static int probe_finish(es_lm_gen *g, gen_lane *l, int ended)
{
    es_lm_probe *p = &l->pr;
    int n = l->ans_n;
    p->answer[n < (int)sizeof p->answer ? n : (int)sizeof p->answer - 1] = '\0';
    p->has_answer = ended && n > 0;
    if (!p->has_answer) p->answer[0] = '\0';
    p->confidence = l->ans_psum / (float)(n + (n < PROBE_MAX_ANSWER));
    p->cost = l->cost;
    memcpy(l->logits, l->saved, (size_t)g->m->cfg.vocab_size * sizeof(float));
    p->window_confidence = window_mean(g, l);
    l->out->n_probes++;
    l->out->probe_tokens += (uint32_t)p->cost;
    l->probed = 1;
    l->phase = LANE_MAIN;
    return l->h && l->h->on_probe ? l->h->on_probe(l->h->ctx, p) : ES_CONTINUE;
}

/* One greedy answer token from the logits of the probe's last step; 1 when
 * it asked for another forward step, 0 when the answer is complete. */
static int probe_answer_step(es_lm_gen *g, gen_lane *l, int *ended)
{
    int V = g->m->cfg.vocab_size;
    es_lm_scaled_softmax(l->probs, l->logits, V, 1.0f);
    int tok = es_lm_argmax(l->probs, V);
    l->ans_psum += l->probs[tok];
    l->cost++;
    int ch = es_lm_token_char(tok);
    if (ch == '.' || ch == '\n' || ch == '\0') { *ended = ch == '.'; return 0; }
    if (l->ans_n < (int)sizeof l->pr.answer - 1) l->pr.answer[l->ans_n] = (char)ch;
    l->ans_n++;
    *ended = 0;
    if (l->ans_n >= PROBE_MAX_ANSWER) return 0;
    lane_feed(l, tok, l->pos + l->cost - 1);
    return 1;
}

/* A text probe at the end of a line (probe_lines): the answer the text has
 * written so far (none yet: no probe), the line's cues, no cost.  Nothing
 * is generated, so it is free and the sample is the same with or without
 * it.  Returns the hooks' verdict (ES_CONTINUE when no probe is made). */
static int line_probe(es_lm_gen *g, gen_lane *l)
{
    es_lm_probe *p = &l->pr;
    l->text[l->tlen] = '\0';
    if (!es_task_extract_answer(l->text, p->answer, sizeof p->answer)) return ES_CONTINUE;
    if (l->h && l->h->on_reach) {
        int r = l->h->on_reach(l->h->ctx, l->n_gen);
        if (r != ES_CONTINUE) return r == ES_STOP ? ES_STOP : ES_CONTINUE;
    }
    int b = l->tlen - 1; /* the line is text[b..tlen-1), its '\n' excluded */
    while (b > 0 && l->text[b - 1] != '\n') b--;
    p->at = l->n_gen;
    p->has_answer = 1;
    p->confidence = NAN;
    p->window_confidence = window_mean(g, l);
    p->cost = 0;
    p->cues = es_text_cues(l->text + b, (size_t)(l->tlen - 1 - b));
    l->out->n_probes++;
    return l->h && l->h->on_probe ? l->h->on_probe(l->h->ctx, p) : ES_CONTINUE;
}

/* The end of a sample: its text and figures. */
static void lane_done(gen_lane *l)
{
    es_lm_sample_result *out = l->out;
    l->text[l->tlen] = '\0';
    out->tokens = l->n_gen;
    out->ended = l->eos;
    out->confidence = l->n_gen ? (float)(l->psum / l->n_gen) : NAN;
    out->has_answer = es_task_extract_answer(l->text, out->answer, sizeof out->answer);
    out->text = l->text;
    l->phase = LANE_DONE;
}

/* Runs the sample's loop from the logits of its last step until it needs
 * another step (returns 1, with feed_tok/feed_pos set) or ends (returns 0).
 * The loop: probe when due, then sample one token from the current logits
 * with one uniform, then feed it.  The limit keeps PROBE_ROOM positions free
 * whether or not probes are on, so texts never depend on probing; at the
 * limit the probe due there is still made, as a replay of a token budget
 * feeds the probes at or before the cap. */
static int lane_advance(es_lm_gen *g, gen_lane *l)
{
    int V = g->m->cfg.vocab_size, every = g->o.probe_every;
    for (;;) {
        if (l->phase == LANE_DONE) return 0;
        if (l->phase == LANE_PROBE_CUE) {
            if (ES_LM_ANSWER_CUE[l->cue_i]) {
                lane_feed(l, es_lm_char_token(ES_LM_ANSWER_CUE[l->cue_i++]), l->pos + l->cost++);
                return 1;
            }
            l->phase = LANE_PROBE_ANS;
        }
        if (l->phase == LANE_PROBE_ANS) {
            int ended = 0;
            if (probe_answer_step(g, l, &ended)) return 1;
            int verdict = probe_finish(g, l, ended);
            if (verdict == ES_STOP) l->out->stopped = 1;
            if (verdict == ES_STOP || l->final_probe) { lane_done(l); return 0; }
            continue;
        }
        /* LANE_MAIN */
        if (l->line_due) {
            l->line_due = 0;
            if (line_probe(g, l) == ES_STOP) {
                l->out->stopped = 1;
                lane_done(l);
                return 0;
            }
        }
        int due = every > 0 && l->n_gen > 0 && l->n_gen % (uint32_t)every == 0 && !l->probed;
        if (due && l->h && l->h->on_reach) {
            int r = l->h->on_reach(l->h->ctx, l->n_gen);
            if (r == ES_STOP) {
                /* stopped at the probe point before the probe is made */
                l->out->stopped = 1;
                lane_done(l);
                return 0;
            }
            if (r == ES_SKIP) {
                l->probed = 1; /* not a probe point for this policy: go on */
                due = 0;
            }
        }
        if ((int)l->n_gen >= l->limit) {
            l->final_probe = 1;
            if (due) { probe_start(g, l); return 1; }
            lane_done(l);
            return 0;
        }
        if (due) { probe_start(g, l); return 1; }
        es_lm_scaled_softmax(l->probs, l->logits, V, g->o.temperature);
        int tok = g->o.temperature > 0 ? es_lm_sample_token(l->probs, V, l->rng) : es_lm_argmax(l->probs, V);
        float tc = token_confidence(l->probs, V, g->o.conf_topk);
        l->win[l->n_gen % (uint32_t)g->o.window] = tc;
        l->psum += l->probs[tok];
        l->n_gen++;
        l->probed = 0;
        if (l->h && l->h->on_token) l->h->on_token(l->h->ctx, tok, logf(l->probs[tok] + 1e-30f), tc);
        if (tok == ES_LM_EOS || es_lm_token_char(tok) == '\0') {
            l->eos = 1;
            lane_done(l);
            return 0;
        }
        l->text[l->tlen++] = (char)es_lm_token_char(tok);
        l->line_due = g->o.probe_lines && l->text[l->tlen - 1] == '\n';
        lane_feed(l, tok, l->pos++);
        return 1;
    }
}

/* BOS and the prompt as the rows of one step on the first lane's cache
 * (rows of one state at successive positions see each other causally); the
 * other lanes read those positions from it (es_lm_state.prefix), and no
 * sample writes below them: the prompt is computed once and held once, with
 * the arithmetic of feeding it a token at a time.  Its logits are kept for
 * every sample to start from.  Returns the next position or an error. */
static int feed_prompt(es_lm_gen *g, const char *prompt)
{
    const es_lm_config *c = &g->m->cfg;
    int T = c->seq_len;
    g->toks[0] = ES_LM_BOS;
    int np = es_lm_encode(prompt, g->toks + 1, (size_t)(T - 1));
    if (np < 0) return np;
    if (np + 1 + PROBE_ROOM + 1 > T) return ES_ERANGE;
    es_lm_state *s0 = g->lanes[0].s;
    s0->prefix = NULL;
    s0->prefix_len = 0;
    for (int i = 0; i <= np; i++) {
        g->st[i] = s0;
        g->fpos[i] = i;
    }
    es_lm_forward_rows(g->m, g->o.pool, &g->rows, g->st, g->toks, g->fpos, np + 1, np);
    memcpy(g->plogits, g->rows.logits + (size_t)np * (size_t)c->vocab_size, (size_t)c->vocab_size * sizeof(float));
    return np + 1;
}

/* Sample i starts on lane l where the prompt ends. */
static void lane_start(es_lm_gen *g, gen_lane *l, int i, es_rng *rngs, const es_lm_gen_hooks *hooks,
                       es_lm_sample_result *out, int pos, int limit)
{
    memcpy(l->logits, g->plogits, (size_t)g->m->cfg.vocab_size * sizeof(float));
    l->s->prefix = l == g->lanes ? NULL : g->lanes[0].s;
    l->s->prefix_len = l == g->lanes ? 0 : pos;
    l->sample = i;
    l->rng = &rngs[i];
    l->h = hooks ? &hooks[i] : NULL;
    l->out = &out[i];
    l->phase = LANE_MAIN;
    l->pos = pos;
    l->limit = limit;
    l->tlen = l->eos = l->probed = l->final_probe = l->line_due = 0;
    l->n_gen = 0;
    l->psum = 0.0;
}

/* Room for the texts of n samples (grown once; a steady caller allocates
 * nothing). */
static int texts_reserve(es_lm_gen *g, int n)
{
    if (n <= g->texts_cap) return ES_OK;
    char *t = realloc(g->texts, (size_t)n * (size_t)(g->m->cfg.seq_len + 1));
    if (!t) return ES_ENOMEM;
    g->texts = t;
    g->texts_cap = n;
    return ES_OK;
}

/* Runs the lane until it asks for a step (1) or has nothing left to draw
 * (0): a finished sample's text goes to its slot and the next sample of
 * the queue starts on the lane (continuous batching: the batch stays full
 * until the queue is empty). */
static int lane_next(es_lm_gen *g, gen_lane *l, int *next, int n, es_rng *rngs, const es_lm_gen_hooks *hooks,
                     es_lm_sample_result *out, int pos, int limit)
{
    while (l->phase != LANE_DONE || *next < n) {
        if (l->phase == LANE_DONE) lane_start(g, l, (*next)++, rngs, hooks, out, pos, limit);
        if (lane_advance(g, l)) return 1;
        char *slot = g->texts + (size_t)l->sample * (size_t)(g->m->cfg.seq_len + 1);
        memcpy(slot, l->text, (size_t)l->tlen + 1);
        l->out->text = slot;
    }
    return 0;
}

int es_lm_gen_sample_batch(es_lm_gen *g, const char *prompt, es_rng *rngs,
                           const es_lm_gen_hooks *hooks, es_lm_sample_result *out, int n)
{
    if (n < 1) return ES_EINVAL;
    int T = g->m->cfg.seq_len, V = g->m->cfg.vocab_size;
    if (texts_reserve(g, n)) return ES_ENOMEM;
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    int pos = feed_prompt(g, prompt);
    if (pos < 0) return pos;
    int limit = T - PROBE_ROOM - pos;
    if (g->o.max_tokens > 0 && g->o.max_tokens < limit) limit = g->o.max_tokens;
    int lanes = n < g->o.batch ? n : g->o.batch, next = 0;
    for (int i = 0; i < lanes; i++) g->lanes[i].phase = LANE_DONE;
    for (;;) {
        int nr = 0;
        for (int i = 0; i < lanes; i++) {
            gen_lane *l = &g->lanes[i];
            if (!lane_next(g, l, &next, n, rngs, hooks, out, pos, limit)) continue;
            g->req[nr] = l;
            g->st[nr] = l->s;
            g->ftok[nr] = l->feed_tok;
            g->fpos[nr] = l->feed_pos;
            nr++;
        }
        if (!nr) break;
        es_lm_forward_rows(g->m, g->o.pool, &g->rows, g->st, g->ftok, g->fpos, nr, 0);
        for (int r = 0; r < nr; r++)
            memcpy(g->req[r]->logits, g->rows.logits + (size_t)r * V, (size_t)V * sizeof(float));
    }
    return ES_OK;
}

/* One sample is a batch of one: the same code, so the same bytes. */
int es_lm_gen_sample(es_lm_gen *g, const char *prompt, es_rng *rng,
                     const es_lm_gen_hooks *h, es_lm_sample_result *out)
{
    return es_lm_gen_sample_batch(g, prompt, rng, h, out, 1);
}
