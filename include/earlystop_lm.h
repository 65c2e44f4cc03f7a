/*
 * earlystop_lm.h - the built-in reasoning model (libearlystop-lm).
 *
 * A small decoder-only transformer in the llama2.c tradition (RMSNorm, RoPE,
 * SwiGLU, tied embeddings, character vocabulary), trained in C on generated
 * reasoning tasks, so that earlystop can run against a live model:
 *
 *   es_lm_*     model file, inference with a KV cache, training (backward +
 *               AdamW), sampling, generation with probes;
 *   es_task_*   the task generators (last_letters, date, arithmetic);
 *   es_rng_*    the deterministic random streams everything draws from.
 *
 * Conventions as in earlystop.h: functions return 0 or a negative ES_E* code,
 * handles come in _new/_free pairs, no global mutable state.  Threads: an
 * es_lm_pool (pthreads that spin briefly, then sleep) handed to a state, a
 * generator or a trainer; none means the caller's thread only.  One es_lm may
 * be shared read-only by many states.
 *
 * Determinism: every kernel computes each output element in one thread in a
 * fixed order, so results do not depend on the number of threads.  Sample i
 * of item j draws from es_rng_stream(seed, j, i) only and probes draw nothing,
 * so a live run and the recorded trace of the same seed see the same tokens.
 */
#ifndef EARLYSTOP_LM_H
#define EARLYSTOP_LM_H

#include <stddef.h>
#include <stdint.h>
#include "earlystop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ random */

/* xorshift64* state seeded through splitmix64; a plain struct, no globals. */
typedef struct es_rng {
    uint64_t s;
} es_rng;

ES_API void es_rng_seed(es_rng *r, uint64_t seed);
/* The stream of (seed, a, b): independent of every other (a, b). */
ES_API void es_rng_stream(es_rng *r, uint64_t seed, uint64_t a, uint64_t b);
ES_API uint64_t es_rng_u64(es_rng *r);
ES_API uint32_t es_rng_below(es_rng *r, uint32_t n);   /* uniform in [0, n), n > 0 */
ES_API float es_rng_float(es_rng *r);                  /* uniform in [0, 1) */
ES_API float es_rng_normal(es_rng *r);                 /* standard normal */

/* --------------------------------------------------------------- tokenizer */

/*
 * Character vocabulary: 0 = BOS, 1 = EOS, 2 = '\n', 3.. = ASCII 32..126.
 */
enum { ES_LM_BOS = 0, ES_LM_EOS = 1, ES_LM_VOCAB = 98 };

/* Token of character c, or -1 when c is outside the vocabulary. */
ES_API int es_lm_char_token(int c);
/* Character of a token ('\0' for BOS/EOS and bad tokens). */
ES_API int es_lm_token_char(int tok);
/* Encode NUL-terminated text into out[cap]; returns the count, ES_EINVAL on
 * a character outside the vocabulary, ES_ERANGE when cap is too small. */
ES_API int es_lm_encode(const char *text, int *out, size_t cap);

/* ----------------------------------------------------------------- threads */

/*
 * A pool of worker threads for the kernels.  The caller of a kernel is one of
 * the threads, so a pool of n runs n - 1 workers.  A worker that finds no work
 * spins for at most ~50 us, then sleeps (no OpenMP-style busy waiting); work
 * is split into chunks that the caller finishes itself when a worker is
 * descheduled; and the pool keeps measuring, in short interleaved windows,
 * whether the workers speed the caller up, running jobs on the caller alone
 * when they do not (a busy machine): 2 threads are then not much slower than
 * 1.  Results never depend on the thread count.  One job at a time: a kernel
 * called while the pool is busy (from another thread) runs on its caller.
 */
typedef struct es_lm_pool es_lm_pool;

/* Largest thread count accepted (beyond it: ES_EINVAL). */
#define ES_LM_MAX_THREADS 1024

/* Cores this process may run on (sched_getaffinity; at least 1). */
ES_API int es_lm_cpu_count(void);
/* threads in 1..ES_LM_MAX_THREADS, capped at es_lm_cpu_count(): more threads
 * than cores could only take turns. */
ES_API int es_lm_pool_new(int threads, es_lm_pool **out, es_error *err);
ES_API void es_lm_pool_free(es_lm_pool *p);
/* Threads the pool runs (after the cap); 1 for NULL. */
ES_API int es_lm_pool_threads(const es_lm_pool *p);

/* ------------------------------------------------------------------- model */

typedef struct es_lm_config {
    int32_t dim;          /* model width */
    int32_t hidden_dim;   /* SwiGLU width */
    int32_t n_layers;
    int32_t n_heads;
    int32_t vocab_size;   /* ES_LM_VOCAB */
    int32_t seq_len;      /* context length (positions of the KV cache) */
} es_lm_config;

/* The shipped shape (see docs/model.md). */
ES_API void es_lm_config_default(es_lm_config *cfg);
/* ES_EINVAL (with a message) when the shape is unusable. */
ES_API int es_lm_config_check(const es_lm_config *cfg, es_error *err);

typedef struct es_lm es_lm;

/* A model with freshly initialised weights (seeded). */
ES_API int es_lm_new(const es_lm_config *cfg, uint64_t seed, es_lm **out, es_error *err);
/* Read / write the binary model file (docs/model.md: "ESLM" header, then the
 * tensors, little-endian float32, with a checksum).  The loader refuses a
 * file with a NaN or infinite weight (ES_EFORMAT naming the tensor and index);
 * es_lm_save refuses to write one. */
ES_API int es_lm_load(const char *path, es_lm **out, es_error *err);
ES_API int es_lm_save(const es_lm *m, const char *path, es_error *err);
ES_API void es_lm_free(es_lm *m);

ES_API const es_lm_config *es_lm_get_config(const es_lm *m);
ES_API size_t es_lm_n_params(const es_lm *m);
/* All parameters as one flat array (file order). */
ES_API float *es_lm_params(es_lm *m);
ES_API const float *es_lm_params_const(const es_lm *m);

/* Default model path: $ES_MODEL if set, else data/model.bin. */
ES_API const char *es_lm_default_path(void);

/* ------------------------------------------------------------- inference */

/* Run state of one sequence: activations and the KV cache. */
typedef struct es_lm_state es_lm_state;

ES_API int es_lm_state_new(const es_lm *m, es_lm_state **out);
ES_API void es_lm_state_free(es_lm_state *s);
/* Threads for es_lm_forward on this state (borrowed; NULL = none). */
ES_API void es_lm_state_set_pool(es_lm_state *s, es_lm_pool *p);
/* Bytes of the KV cache this state holds (all seq_len positions). */
ES_API size_t es_lm_state_kv_bytes(const es_lm_state *s);

/* Feed `token` at position pos (0 <= pos < seq_len): writes the KV cache at
 * pos and returns the logits of the next token (vocab_size floats owned by
 * the state, valid until the next call).  Rolling back is just feeding a
 * smaller pos again.  Parallel across rows when threads allow. */
ES_API const float *es_lm_forward(const es_lm *m, es_lm_state *s, int token, int pos);
/* The same computation written plainly (no threads, no kernels): the
 * reference the tests compare es_lm_forward with. */
ES_API const float *es_lm_forward_ref(const es_lm *m, es_lm_state *s, int token, int pos);

/* -------------------------------------------------------------- training */

typedef struct es_lm_trainer es_lm_trainer;

/* A trainer for batches of up to batch x seq tokens (seq <= seq_len). */
ES_API int es_lm_trainer_new(es_lm *m, int batch, int seq, es_lm_trainer **out);
ES_API void es_lm_trainer_free(es_lm_trainer *t);
/* Threads for the trainer's kernels (borrowed; NULL = none).  The weights do
 * not depend on it. */
ES_API void es_lm_trainer_set_pool(es_lm_trainer *t, es_lm_pool *p);

/* Forward pass of a batch: inputs/targets are [batch][seq] (row-major, only
 * the first `seq` columns of each row used); a target < 0 is not scored.
 * Returns the mean cross-entropy over scored targets (NaN if none). */
ES_API float es_lm_train_forward(es_lm_trainer *t, const int *inputs, const int *targets, int seq);
/* Backward pass of the last forward: gradients are set (not accumulated). */
ES_API void es_lm_train_backward(es_lm_trainer *t);
/* Gradient of every parameter (file order), after es_lm_train_backward. */
ES_API float *es_lm_trainer_grads(es_lm_trainer *t);

typedef struct es_lm_adamw {
    float lr, beta1, beta2, eps, weight_decay, grad_clip;
} es_lm_adamw;

/* One AdamW update (step counts from 1); clips the global gradient norm to
 * grad_clip when > 0; returns the norm before clipping.  A non-finite norm
 * (NaN or infinite gradients) leaves the weights untouched and is returned
 * as is: the caller should stop (es_lm_train_step does). */
ES_API float es_lm_adamw_step(es_lm_trainer *t, const es_lm_adamw *opt, int step);

/* Forward, backward and AdamW on one batch.  ES_ERANGE, with the step and
 * what went non-finite in err, when the loss, the gradient norm or a weight
 * after the update is NaN or infinite (a learning rate far too high, say):
 * stop there and do not save.  A bad loss or gradient leaves the weights as
 * they were.  *loss and *gnorm (either may be NULL) get the figures. */
ES_API int es_lm_train_step(es_lm_trainer *t, const int *inputs, const int *targets, int seq,
                     const es_lm_adamw *opt, int step, float *loss, float *gnorm, es_error *err);

/* ----------------------------------------------------------------- tasks */

typedef enum es_task_kind {
    ES_TASK_LAST_LETTERS = 0,
    ES_TASK_DATE = 1,
    ES_TASK_ARITHMETIC = 2,
    ES_TASK_COUNT = 3
} es_task_kind;

ES_API int es_task_parse(const char *name, es_task_kind *out);   /* ES_EINVAL if unknown */
ES_API const char *es_task_name(es_task_kind k);
ES_API es_answer_type es_task_answer_type(es_task_kind k);

enum { ES_TASK_TEXT_CAP = 512 };

/* One generated problem.  `prompt` is what the model is given (question and
 * newline); `completion` is a training chain of thought (steps, answer line,
 * re-checks); `gold` the correct answer. */
typedef struct es_task_example {
    es_task_kind kind;
    char prompt[ES_TASK_TEXT_CAP];
    char completion[ES_TASK_TEXT_CAP];
    char gold[32];
    int slipped;      /* 1 when the completion makes a slip then corrects it */
} es_task_example;

/* Rate at which training chains make a slip before the answer line (which a
 * re-check then corrects). */
#define ES_TASK_SLIP_RATE 0.15f

/* Difficulty levels: 1 (ES_TASK_LEVEL) is what the model is evaluated on;
 * level 0 has larger numbers (date: up to 28 days added, arithmetic: two-digit
 * operands) and serves as the first stage of the training curriculum. */
#define ES_TASK_LEVEL 1
ES_API int es_task_draw_level(es_task_kind k, int level, es_rng *rng, es_task_example *out);

/* Item `index` of task k under `seed` (deterministic, no global state). */
ES_API int es_task_make(es_task_kind k, uint64_t seed, uint64_t index, es_task_example *out);
/* Draw an example from rng (training data). */
ES_API int es_task_draw(es_task_kind k, es_rng *rng, es_task_example *out);

/* The answer cue: the model's answer is what follows it up to '.'. */
#define ES_LM_ANSWER_CUE "So the answer is "

/* Last answer in text (after the last cue, up to '.' or newline) into
 * out[cap]; returns 1 when found, 0 when none (out = ""). */
ES_API int es_task_extract_answer(const char *text, char *out, size_t cap);
/* The same rule with another cue (a served model's "The answer is "). */
ES_API int es_task_extract_answer_cue(const char *text, const char *cue, char *out, size_t cap);

/* ------------------------------------------------------------ generation */

typedef struct es_lm_gen_opts {
    float temperature;    /* 0 = greedy */
    int probe_every;      /* tokens between probes; 0 = no probes */
    int probe_lines;      /* 1: instead, a free text probe at each line end: the answer
                             written so far, with the line's cues (es_text_cues) */
    int max_tokens;       /* 0 = as many as the context allows */
    int window;           /* DeepConf sliding window (tokens) */
    int conf_topk;        /* top-k of DeepConf's token confidence */
    int batch;            /* samples es_lm_gen_sample_batch runs at once (default 1) */
    es_lm_pool *pool;     /* threads (borrowed); NULL = the caller's only */
} es_lm_gen_opts;

/* Default sampling temperature (chosen so that the tasks' EM sits in the
 * windows docs/model.md reports). */
#define ES_LM_DEFAULT_TEMPERATURE 1.0f

ES_API void es_lm_gen_opts_default(es_lm_gen_opts *o);

/* What a probe found. */
typedef struct es_lm_probe {
    uint32_t at;              /* tokens generated before the probe */
    char answer[32];          /* "" with has_answer = 0 when none */
    int has_answer;
    float confidence;         /* mean probability of the greedy answer tokens */
    float window_confidence;  /* mean token confidence of the last `window` tokens */
    int32_t cost;             /* tokens the probe fed + decoded (0: a text probe) */
    uint32_t cues;            /* a text probe's cues (ES_CUE_*), 0 for a forced one */
} es_lm_probe;

/* Events of a sample as it runs.  on_reach is asked at a probe point before
 * the probe is computed, on_probe once it is; ES_STOP from either ends the
 * sample there (its answer is then the caller's business, es_session's for
 * a live policy).  Any hook may be NULL. */
typedef struct es_lm_gen_hooks {
    int (*on_token)(void *ctx, int token, float logprob, float token_conf);
    int (*on_probe)(void *ctx, const es_lm_probe *probe);
    int (*on_reach)(void *ctx, uint32_t at);
    void *ctx;
} es_lm_gen_hooks;

/* Context positions kept free for a probe (its cue and answer): a sample's
 * tokens stop short of them, with or without probing. */
#define ES_LM_PROBE_ROOM 32

typedef struct es_lm_sample_result {
    uint32_t tokens;          /* tokens generated (EOS included; probes excluded) */
    uint32_t probe_tokens;    /* sum of probe costs */
    uint32_t n_probes;
    int stopped;              /* 1 when on_probe or on_reach said ES_STOP */
    int ended;                /* 1 when the model ended it (EOS), 0 when cut at the limit */
    int has_answer;
    char answer[32];          /* final answer (last cue in the text) */
    float confidence;         /* mean probability of the sampled tokens */
    const char *text;         /* generated text, owned by the generator */
} es_lm_sample_result;

typedef struct es_lm_gen es_lm_gen;

/* A generator: one state plus every buffer a sample needs, so that drawing
 * a sample allocates nothing. */
ES_API int es_lm_gen_new(const es_lm *m, const es_lm_gen_opts *opts, es_lm_gen **out, es_error *err);
ES_API void es_lm_gen_free(es_lm_gen *g);
ES_API size_t es_lm_gen_kv_bytes(const es_lm_gen *g);

/* Draw one sample for `prompt` from rng (consumed only by sampling).  hooks
 * may be NULL.  ES_ERANGE when the prompt does not fit the context. */
ES_API int es_lm_gen_sample(es_lm_gen *g, const char *prompt, es_rng *rng,
                     const es_lm_gen_hooks *hooks, es_lm_sample_result *out);

/* Draw n samples of one prompt: sample i draws from rngs[i], reports to
 * hooks[i] (hooks may be NULL) and is written to out[i] (texts owned by the
 * generator, valid until its next call).  Up to opts.batch samples advance in
 * lock-step, so that every weight row is loaded once per step for all of them
 * (matrix-matrix products); a lane whose sample ends takes the next one
 * (continuous batching); the prompt is computed once and its cache shared.
 * Each sample is the same bytes as es_lm_gen_sample would give it alone. */
ES_API int es_lm_gen_sample_batch(es_lm_gen *g, const char *prompt, es_rng *rngs,
                           const es_lm_gen_hooks *hooks, es_lm_sample_result *out, int n);

/* The stream of sample `sample` of item `item` under `seed`, and the seed of
 * item questions: shared by generate and run (see docs/model.md). */
ES_API void es_lm_sample_rng(es_rng *r, uint64_t seed, uint64_t item, uint64_t sample);
#define ES_LM_QUESTION_SALT 0x5155455354494f4eULL

/* ------------------------------------------------------------- serving */

/*
 * es_lm_batch: sequences of different prompts stepped together, what a
 * server's scheduler runs (continuous batching across requests).  Each
 * sequence has its own cache; a sequence added between steps has its prompt
 * fed as rows of the next step, beside the other sequences' next tokens, so
 * one forward step serves every request at once.  A sequence's tokens do not
 * depend on what else is in the batch: with the same prompt, temperature and
 * stream it is the same bytes as es_lm_gen_sample (without probes) or a
 * probe of it (temperature 0 on the prompt + text + cue).
 */
typedef struct es_lm_batch es_lm_batch;

/* Alternatives reported per token at most. */
#define ES_LM_MAX_TOP 20

typedef struct es_lm_seq_params {
    float temperature;    /* 0 = greedy */
    int max_tokens;       /* 0 = to the end of the context */
    int top_logprobs;     /* alternatives per token, 0..ES_LM_MAX_TOP */
    es_rng rng;           /* the sequence's stream (consumed only when temperature > 0) */
} es_lm_seq_params;

enum { ES_LM_SEQ_RUNNING = 0, ES_LM_SEQ_EOS = 1, ES_LM_SEQ_LENGTH = 2 };

/* One token of a sequence, as sampled. */
typedef struct es_lm_token_event {
    int token;            /* ES_LM_EOS or a character's token */
    int ch;               /* its character, '\0' for EOS */
    float logprob;        /* log-probability under the distribution sampled from */
    int n_top;            /* alternatives below, most likely first */
    int top_token[ES_LM_MAX_TOP];
    float top_logprob[ES_LM_MAX_TOP];
    int finish;           /* ES_LM_SEQ_RUNNING, or why this was the last token */
} es_lm_token_event;

/* Called once per token of a sequence, from es_lm_batch_step. */
typedef void (*es_lm_seq_fn)(void *ctx, int seq, const es_lm_token_event *ev);

/* Room for max_seqs sequences at once (each holds a full context's cache). */
ES_API int es_lm_batch_new(const es_lm *m, int max_seqs, es_lm_pool *pool, es_lm_batch **out, es_error *err);
ES_API void es_lm_batch_free(es_lm_batch *b);
/* Start a sequence; returns its id (>= 0), ES_EINVAL for a character outside
 * the vocabulary, ES_ERANGE when the prompt leaves no room to generate or no
 * slot is free (es_lm_batch_free_slots).  Allocates nothing. */
ES_API int es_lm_batch_add(es_lm_batch *b, const char *prompt, const es_lm_seq_params *p, es_lm_seq_fn fn,
                           void *ctx);
/* Drop a sequence now (its callback is not called again). */
ES_API void es_lm_batch_cancel(es_lm_batch *b, int seq);
/* One forward step for every sequence, then one token each (reported through
 * their callbacks); a finished sequence's slot is free after it.  Returns
 * the sequences still running. */
ES_API int es_lm_batch_step(es_lm_batch *b);
ES_API int es_lm_batch_active(const es_lm_batch *b);
ES_API int es_lm_batch_free_slots(const es_lm_batch *b);
/* Tokens a prompt takes (BOS included), or ES_EINVAL / ES_ERANGE as
 * es_lm_batch_add would refuse it. */
ES_API int es_lm_batch_prompt_tokens(const es_lm_batch *b, const char *prompt);

/* ------------------------------------------------------------ live runs */

/*
 * Live early stopping: an es_policy decides inside the generation loop, so
 * samples it does not draw and tokens it cuts are never computed.  The loop
 * drives it through an es_session, as es_replay_item drives it over a
 * recorded trace: probes only with a within-sample rule (every probe_every
 * tokens), a token budget as the generator's limit with the last probe's
 * answer forced at the cap.  With the sample streams of es_lm_sample_rng, a
 * live run and the replay of `generate`'s trace of the same seed make the
 * same decisions and count the same tokens.
 */
typedef struct es_lm_live es_lm_live;

typedef struct es_lm_live_result {
    int32_t answer;           /* the policy's final answer id (es_lm_live_key) */
    int correct;              /* 1 when it equals gold */
    uint32_t samples;         /* samples drawn */
    uint32_t probes;          /* probes made */
    uint64_t tokens;          /* tokens generated up to each sample's stop */
    uint64_t probe_tokens;    /* tokens the probes spent */
    uint32_t peak_positions;  /* most KV positions one sample held */
} es_lm_live_result;

/* `gen` gives temperature and probe spacing (probes are switched off when the
 * policy has no within-sample rule; a rule that needs text cues,
 * es_policy_info.needs_cues, gets text probes at line ends whatever `gen`
 * says, as a replay feeds it only those); max_samples: samples per item at
 * most. */
ES_API int es_lm_live_new(const es_lm *m, const es_lm_gen_opts *gen, es_policy *p, es_answer_type t,
                   uint32_t max_samples, es_lm_live **out, es_error *err);
ES_API void es_lm_live_free(es_lm_live *lv);
/* Run one question: sample i draws from es_lm_sample_rng(seed, item, i). */
ES_API int es_lm_live_item(es_lm_live *lv, const char *prompt, const char *gold, uint64_t seed,
                    uint64_t item, es_lm_live_result *out);
/* A sample as the session settled it (its answer id, its tokens up to its
 * stop, and the tokens its probes cost). */
typedef struct es_lm_live_sample {
    int32_t answer;
    uint32_t tokens, probe_tokens;
} es_lm_live_sample;
/* es_lm_live_item keeping every sample drawn in samples[0..*n) (room for
 * max_samples): what a driver reports to the online controller
 * (es_controller_observe).  With the policy in observe mode (an audit) the
 * samples run on to the cap. */
ES_API int es_lm_live_item_record(es_lm_live *lv, const char *prompt, const char *gold, uint64_t seed, uint64_t item,
                                  es_lm_live_result *out, es_lm_live_sample *samples, uint32_t *n);
/* Answer ids of an item are below this (the null answer's 0 included). */
ES_API uint32_t es_lm_live_max_answers(const es_lm_live *lv);
/* Canonical key of an answer id of the last item (NULL for the null answer). */
ES_API const char *es_lm_live_key(const es_lm_live *lv, int32_t id);
/* Bytes of KV cache per position (both K and V, all layers). */
ES_API size_t es_lm_live_kv_bytes_per_position(const es_lm_live *lv);
/* 1 when its probes are free text probes at line ends: asked for
 * (probe_lines), or the policy stops only on cued probes (needs_cues). */
ES_API int es_lm_live_text_probes(const es_lm_live *lv);

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_LM_H */
