/* batch.c - sequences of different prompts stepped together (a server's
 * continuous batching, see earlystop_lm.h).
 *
 * Every step gathers one row per running sequence (its last token) and the
 * rows of the prompts added since the last step (all positions of a prompt
 * on its own cache, which es_lm_forward_rows computes causally), runs one
 * forward pass over them, then samples each sequence's next token from its
 * row's logits with the sampler generate.c uses.  A row's logits do not
 * depend on the other rows, so a sequence is the same bytes whoever shares
 * its steps.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_internal.h"

typedef enum seq_phase { SEQ_FREE = 0, SEQ_PROMPT, SEQ_RUN } seq_phase;

typedef struct batch_seq {
    es_lm_state *s;
    seq_phase phase;
    es_lm_seq_params p;
    es_lm_seq_fn fn;
    void *ctx;
    int *prompt;       /* [seq_len] BOS + the prompt's tokens */
    int np;            /* tokens in prompt[] */
    int pos;           /* next position to feed */
    int feed;          /* token to feed at pos */
    int limit;         /* tokens to generate at most */
    int n_gen;
    int row;           /* the row whose logits are this sequence's */
} batch_seq;

struct es_lm_batch {
    const es_lm *m;
    es_lm_pool *pool;
    int max_seqs, active;
    batch_seq *seqs;
    es_lm_rows rows;
    es_lm_state **st;
    int *tok, *pos;
    int *prompts;
    float *probs;
};

/* Cap on prompt rows per step: one context's worth, so that a burst of new
 * requests does not stall the running ones for many contexts at once. */
static int prompt_budget(const es_lm_batch *b) { return b->m->cfg.seq_len; }

int es_lm_batch_new(const es_lm *m, int max_seqs, es_lm_pool *pool, es_lm_batch **out, es_error *err)
{
    *out = NULL;
    if (max_seqs < 1 || max_seqs > 65536)
        return es_error_set(err, ES_EINVAL, NULL, 0, "max_seqs", "sequences at once must be in 1..65536, not %d",
                            max_seqs);
    const es_lm_config *c = &m->cfg;
    es_lm_batch *b = calloc(1, sizeof *b);
    if (!b) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "batch");
    int cap = max_seqs + c->seq_len;
    b->m = m;
    b->pool = pool;
    b->max_seqs = max_seqs;
    b->seqs = calloc((size_t)max_seqs, sizeof *b->seqs);
    b->st = calloc((size_t)cap, sizeof *b->st);
    b->tok = calloc((size_t)cap, sizeof(int));
    b->pos = calloc((size_t)cap, sizeof(int));
    b->prompts = calloc((size_t)max_seqs * (size_t)c->seq_len, sizeof(int));
    b->probs = calloc((size_t)c->vocab_size, sizeof(float));
    int bad = !b->seqs || !b->st || !b->tok || !b->pos || !b->prompts || !b->probs ||
              es_lm_rows_init(&b->rows, c, cap);
    for (int i = 0; !bad && i < max_seqs; i++) {
        b->seqs[i].prompt = b->prompts + (size_t)i * (size_t)c->seq_len;
        bad = es_lm_state_new(m, &b->seqs[i].s) != ES_OK;
    }
    if (bad) {
        es_lm_batch_free(b);
        return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "batch of %d sequences", max_seqs);
    }
    *out = b;
    return ES_OK;
}

void es_lm_batch_free(es_lm_batch *b)
{
    if (!b) return;
    for (int i = 0; b->seqs && i < b->max_seqs; i++) es_lm_state_free(b->seqs[i].s);
    es_lm_rows_free(&b->rows);
    free(b->seqs);
    free(b->st);
    free(b->tok);
    free(b->pos);
    free(b->prompts);
    free(b->probs);
    free(b);
}

/* BOS then the prompt's characters; room for at least one token after. */
static int encode_prompt(const es_lm_batch *b, const char *prompt, int *out)
{
    int T = b->m->cfg.seq_len;
    out[0] = ES_LM_BOS;
    int n = es_lm_encode(prompt, out + 1, (size_t)(T - 1));
    if (n < 0) return n;
    if (n + 1 >= T) return ES_ERANGE;
    return n + 1;
}

int es_lm_batch_prompt_tokens(const es_lm_batch *b, const char *prompt)
{
    int T = b->m->cfg.seq_len;
    int np = 1;
    for (const unsigned char *p = (const unsigned char *)prompt; *p; p++, np++) {
        if (es_lm_char_token(*p) < 0) return ES_EINVAL;
        if (np + 1 >= T) return ES_ERANGE;
    }
    return np;
}

int es_lm_batch_add(es_lm_batch *b, const char *prompt, const es_lm_seq_params *p, es_lm_seq_fn fn, void *ctx)
{
    if (!p || p->temperature < 0 || !(p->temperature == p->temperature) || p->max_tokens < 0 ||
        p->top_logprobs < 0 || p->top_logprobs > ES_LM_MAX_TOP)
        return ES_EINVAL;
    int slot = -1;
    for (int i = 0; i < b->max_seqs && slot < 0; i++)
        if (b->seqs[i].phase == SEQ_FREE) slot = i;
    if (slot < 0) return ES_ERANGE;
    batch_seq *q = &b->seqs[slot];
    int np = encode_prompt(b, prompt, q->prompt);
    if (np < 0) return np;
    q->np = np;
    q->p = *p;
    q->fn = fn;
    q->ctx = ctx;
    q->pos = 0;
    q->n_gen = 0;
    q->row = -1;
    q->limit = b->m->cfg.seq_len - np;
    if (p->max_tokens > 0 && p->max_tokens < q->limit) q->limit = p->max_tokens;
    q->phase = SEQ_PROMPT;
    b->active++;
    return slot;
}

void es_lm_batch_cancel(es_lm_batch *b, int seq)
{
    if (seq < 0 || seq >= b->max_seqs || b->seqs[seq].phase == SEQ_FREE) return;
    b->seqs[seq].phase = SEQ_FREE;
    b->active--;
}

int es_lm_batch_active(const es_lm_batch *b) { return b->active; }

int es_lm_batch_free_slots(const es_lm_batch *b) { return b->max_seqs - b->active; }

/* The k most likely tokens, most likely first (ties to the lower id). */
static int top_k(const float *probs, int V, int k, int *tok)
{
    int n = 0;
    for (int i = 0; i < V; i++) {
        if (n == k && probs[i] <= probs[tok[n - 1]]) continue;
        int j = n < k ? n++ : n - 1;
        while (j > 0 && probs[tok[j - 1]] < probs[i]) {
            tok[j] = tok[j - 1];
            j--;
        }
        tok[j] = i;
    }
    return n;
}

/* Sample the next token of q from its row's logits and report it; returns
 * 1 while the sequence goes on. */
static int seq_next(es_lm_batch *b, batch_seq *q, int slot)
{
    int V = b->m->cfg.vocab_size;
    const float *logits = b->rows.logits + (size_t)q->row * (size_t)V;
    es_lm_scaled_softmax(b->probs, logits, V, q->p.temperature);
    int tok = q->p.temperature > 0 ? es_lm_sample_token(b->probs, V, &q->p.rng) : es_lm_argmax(b->probs, V);
    es_lm_token_event ev;
    ev.token = tok;
    ev.ch = es_lm_token_char(tok);
    ev.logprob = logf(b->probs[tok] + 1e-30f);
    ev.n_top = q->p.top_logprobs ? top_k(b->probs, V, q->p.top_logprobs, ev.top_token) : 0;
    for (int i = 0; i < ev.n_top; i++) ev.top_logprob[i] = logf(b->probs[ev.top_token[i]] + 1e-30f);
    q->n_gen++;
    ev.finish = tok == ES_LM_EOS || ev.ch == '\0' ? ES_LM_SEQ_EOS
                : q->n_gen >= q->limit          ? ES_LM_SEQ_LENGTH
                                                : ES_LM_SEQ_RUNNING;
    if (ev.finish) {
        q->phase = SEQ_FREE;
        b->active--;
    } else {
        q->feed = tok;
    }
    q->fn(q->ctx, slot, &ev);
    return !ev.finish;
}

int es_lm_batch_step(es_lm_batch *b)
{
    int n = 0, budget = prompt_budget(b);
    for (int i = 0; i < b->max_seqs; i++) {
        batch_seq *q = &b->seqs[i];
        q->row = -1;
        if (q->phase == SEQ_RUN) {
            b->st[n] = q->s;
            b->tok[n] = q->feed;
            b->pos[n] = q->pos++;
            q->row = n++;
        } else if (q->phase == SEQ_PROMPT && q->np <= budget) {
            budget -= q->np;
            for (int t = 0; t < q->np; t++) {
                b->st[n] = q->s;
                b->tok[n] = q->prompt[t];
                b->pos[n] = t;
                n++;
            }
            q->pos = q->np;
            q->row = n - 1;
            q->phase = SEQ_RUN;
        }
    }
    if (!n) return b->active;
    es_lm_forward_rows(b->m, b->pool, &b->rows, b->st, b->tok, b->pos, n, 0);
    for (int i = 0; i < b->max_seqs; i++) {
        batch_seq *q = &b->seqs[i];
        /* a callback may cancel or add sequences: only those fed here draw */
        if (q->phase == SEQ_RUN && q->row >= 0) seq_next(b, q, i);
    }
    return b->active;
}
