/*
 * earlystop_replay.h - the replay layer of earlystop (libearlystop-replay):
 * recorded traces in memory, their summary figures, policies replayed over
 * them in file order or many random orders (on several threads), the
 * oracles, and the report (per-policy figures paired against `full`) that
 * `earlystop eval` and `earlystop tune` print.
 *
 * Depends on the core (earlystop.h) and libc/libm/pthreads only.  Reading
 * the files is the io layer's (earlystop_io.h: es_traceset_load).
 */
#ifndef EARLYSTOP_REPLAY_H
#define EARLYSTOP_REPLAY_H

#include "earlystop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- trace items */

/*
 * One item (question) as read from or written to a trace file.  Reader-owned
 * memory: valid until the next read.  Absent optional floats are NaN, absent
 * probe costs are -1.  A NULL answer is the "null" answer (none extracted).
 */
typedef struct es_probe {
    uint32_t at;              /* tokens generated before the probe */
    const char *answer;       /* NULL = null */
    double confidence;        /* mean token probability of the probed answer, NaN if absent */
    double window_confidence; /* DeepConf sliding-window confidence, NaN if absent */
    int32_t cost;             /* tokens the probe itself spent, -1 if absent */
    uint32_t cues;            /* text cues at the probe (ES_CUE_*), 0 if absent */
} es_probe;

typedef struct es_sample {
    const char *answer;       /* NULL = null */
    uint32_t tokens;
    double confidence;        /* NaN if absent */
    const char *text;         /* NULL if absent or dropped */
    size_t n_probes;
    const es_probe *probes;
} es_sample;

typedef struct es_item {
    const char *id;
    const char *task;
    const char *question;     /* NULL if absent */
    es_answer_type answer_type;
    size_t n_gold;            /* >= 1 */
    const char *const *gold;
    size_t n_samples;
    const es_sample *samples;
} es_item;

/* ------------------------------------------------- compact in-memory traces */

/*
 * es_traceset: the compact form used for replay.  Answers are interned per
 * item as es_interner does it: ES_NULL_ANSWER (0) for the null answer, then
 * 1, 2, ... in order of first appearance (all samples first, in order, then
 * probe answers), so a vote is integer counting.  Whether an answer is
 * correct is decided once, at load.  Token counts live in flat arrays.
 */
typedef struct es_traceset es_traceset;

enum { ES_KEEP_TEXT = 1 };   /* es_traceset_new flags: keep sample texts and questions */

ES_API int es_traceset_new(unsigned flags, es_traceset **out);
ES_API void es_traceset_free(es_traceset *ts);

/* Copy `item` in.  ES_EFORMAT on an item that breaks the format. */
ES_API int es_traceset_add(es_traceset *ts, const es_item *item, es_error *err);

ES_API size_t es_traceset_n_items(const es_traceset *ts);
ES_API size_t es_traceset_n_samples(const es_traceset *ts);   /* total over items */
ES_API size_t es_traceset_n_probes(const es_traceset *ts);    /* total over samples */
/* Bytes held by the set (for memory reports). */
ES_API size_t es_traceset_bytes(const es_traceset *ts);

/* Read-only view of one item, pointing into the set's flat arrays. */
typedef struct es_item_view {
    const char *id;
    const char *task;
    es_answer_type answer_type;
    uint32_t n_samples;
    uint32_t n_answers;            /* ids in use: ES_NULL_ANSWER (0) and the item's answers */
    const int32_t *answer;         /* [n_samples] interned sample answers */
    const uint32_t *tokens;        /* [n_samples] */
    const float *confidence;       /* [n_samples], NaN where absent */
    const uint8_t *correct;        /* [n_answers] 1 when that answer matches gold */
    const char *const *answer_key; /* [n_answers] canonical keys (NULL for null) */
    /* [n_answers] the spelling shown for each answer (NULL for null): the
     * most common raw spelling among the samples' answers with that key,
     * ties to the first seen; for an answer only probes gave, the first
     * probe's spelling */
    const char *const *answer_raw;
    /* [n_answers] what a policy may know of each answer
     * (es_session_set_answer_flags): ES_ANSWER_WELLFORMED from its key */
    const uint8_t *answer_flags;
    const char *gold;              /* first gold answer, raw */
    /* probes of sample s are probe_*[probe_off[s] .. probe_off[s+1]); the
     * probe_* arrays are the whole set's, probe_off holds indices into them */
    const uint32_t *probe_off;     /* [n_samples + 1] */
    const uint32_t *probe_at;
    const int32_t *probe_answer;
    const float *probe_confidence;
    const float *probe_window_confidence;
    const int32_t *probe_cost;     /* -1 where absent */
    const uint8_t *probe_cues;     /* ES_CUE_* bits, 0 where absent */
    const char *const *text;       /* [n_samples] or NULL when texts were dropped */
} es_item_view;

/* The view points into the set: valid until the next es_traceset_add. */
ES_API int es_traceset_item(const es_traceset *ts, size_t i, es_item_view *out);

/* ------------------------------------------------------------------ stats */

/* Per-file summary figures (see `earlystop stats`). */
typedef struct es_stats {
    size_t items;
    size_t samples;
    double samples_per_item;
    double single_em;          /* EM of each item's first sample */
    double maj_em;             /* majority of all samples, ties to first seen */
    double oracle_em;          /* any sample correct */
    double tokens_per_item;    /* all samples' tokens */
    double consistency_oracle_samples;
    double consistency_oracle_tokens;
    /* token-level F1 of the majority answer, over items of answer_type text */
    size_t text_items;
    double maj_f1;             /* 0 when text_items == 0 */
    /* probe files (0 when none) */
    size_t traces_with_probes; /* samples that carry probes */
    double probes_per_trace;
    double full_em;            /* final answer of each trace (= maj_em for k = 1) */
    double stable_final_tokens;
} es_stats;

ES_API int es_stats_compute(const es_traceset *ts, es_stats *out);

/*
 * Duplicate sample texts (`stats` and `import` report them): es_dup counts,
 * over the items added, the samples whose text equals an earlier sample's
 * text in the same item, and the items whose texts repeat in a copy pattern
 * (a period p <= k/2, or every sample followed by its copy; checked on items
 * with k >= 4 samples, all with text, at least two different).  Texts are
 * compared by es_text_hash and not kept.  See docs/import.md.
 */
typedef struct es_dup es_dup;

typedef struct es_dup_stats {
    size_t items;            /* items added */
    size_t text_samples;     /* samples that carry a text */
    size_t dup_samples;      /* of those, texts equal to an earlier sample's in the item */
    size_t pattern_checked;  /* items that can show a copy pattern */
    size_t pattern_items;    /* of those, items that show one */
} es_dup_stats;

ES_API int es_dup_new(es_dup **out);
ES_API void es_dup_free(es_dup *d);
/* One item's sample texts (texts[i] NULL: sample i has none).  Allocates
 * only when an item has more samples than any before. */
ES_API int es_dup_add(es_dup *d, const char *const *texts, size_t n);
ES_API int es_dup_add_item(es_dup *d, const es_item *item);
ES_API void es_dup_get(const es_dup *d, es_dup_stats *out);
/* dup_samples / text_samples; NaN when no sample carries a text. */
ES_API double es_dup_rate(const es_dup_stats *s);
/* 1 when the copy rule fires: patterns in >= 2 items and >= half the checked ones. */
ES_API int es_dup_suspicious(const es_dup_stats *s);
/* The warning sentence for a suspicious set. */
ES_API void es_dup_describe(const es_dup_stats *s, char *buf, size_t cap);
/* 64-bit FNV-1a of s[0..n). */
ES_API uint64_t es_text_hash(const char *s, size_t n);

/* Stable-final oracle of one trace: `at` of the earliest probe from which
 * every later probe equals `final_answer`; `total_tokens` when the last
 * probe differs or there are no probes. */
ES_API uint32_t es_stable_final_tokens(const uint32_t *at, const int32_t *ans, uint32_t n_probes,
                                int32_t final_answer, uint32_t total_tokens);

/* ------------------------------------------------------------------ replay */

/* probe_cost for es_replay_item: take each probe's own `cost` field (0 where
 * absent), or charge a fixed number of tokens per probe when >= 0. */
enum { ES_PROBE_COST_FIELD = -1 };

/*
 * Replay the session's policy on one recorded item, samples in `order`
 * (NULL = file order), as a live loop would have run it (the session owns
 * the protocol: probes, lag, stopped and forced answers; the answers'
 * flags are handed over after begin_item).  out->correct is set from the
 * item's gold.  Allocates nothing.
 */
ES_API int es_replay_item(es_session *s, const es_item_view *v, const uint32_t *order, int32_t probe_cost,
                   es_outcome *out);

/* Sample k of item v fed to the session with its probes (the ones the
 * policy makes: none without a within rule), as es_replay_item feeds each
 * sample; for drivers that look between samples (the tuner's sweeps), who
 * begin the item with es_replay_begin_item.  Returns
 * es_session_end_sample's verdict. */
ES_API int es_replay_begin_item(es_session *s, const es_item_view *v);
ES_API int es_replay_sample(es_session *s, const es_item_view *v, uint32_t k, int32_t probe_cost);

/* Run fn(ctx, thread, chunk) for chunks 0..n_chunks-1 on `threads` threads
 * (0 = one per core; the caller's thread works too), each thread taking the
 * next chunk when done, waiting passively.  Stops handing out chunks after
 * the first error, which it returns (the lowest failing chunk's). */
ES_API int es_parallel(int threads, size_t n_chunks, int (*fn)(void *ctx, int thread, size_t chunk), void *ctx);
/* The threads es_parallel would start for `threads` (0 = one per core). */
ES_API int es_parallel_threads(int threads);

/* Per-item sums over orders, kept as integers so that the totals do not
 * depend on how shuffles are split across threads. */
typedef struct es_eval_acc {
    uint64_t correct, samples, rounds, probes, tokens, probe_tokens;
} es_eval_acc;

/* One order's outcome added to an item's sums (inline: the replay's inner
 * loop calls it per item and order). */
static inline void es_eval_acc_add(es_eval_acc *a, const es_outcome *o)
{
    a->correct += o->correct;
    a->samples += o->samples;
    a->rounds += o->rounds;
    a->probes += o->probes;
    a->tokens += o->tokens;
    a->probe_tokens += o->probe_tokens;
}

/* Random order number `shuffle` of an item with n samples: a pure function
 * of (seed, shuffle, item), so any thread can make any order. */
ES_API void es_shuffle_order(uint64_t seed, uint32_t shuffle, uint32_t item, uint32_t n, uint32_t *order);

/*
 * Replay the session's policy on every item of ts for orders [shuffle_begin,
 * shuffle_end), adding into acc[item].  shuffle_begin == shuffle_end == 0
 * replays the file order once.  Allocates its order buffers per call,
 * nothing per item.  On error the policy's es_policy_errmsg says why and
 * *bad_item names the item.
 */
ES_API int es_eval_policy(const es_traceset *ts, es_session *s, uint64_t seed, uint32_t shuffle_begin,
                   uint32_t shuffle_end, int32_t probe_cost, es_eval_acc *acc, size_t *bad_item);

/*
 * es_eval_policy over orders [0, shuffles) (shuffles == 0: the file order
 * once) on `threads` threads (0 = one per core), each with a clone of
 * `proto`; the threads wait passively and take chunks of orders in turn, so
 * a starved thread slows no one.  Adds integer sums into acc: the result is
 * the same bytes whatever the thread count.  On error err names the item and
 * the policy's reason.
 */
ES_API int es_eval_threads(const es_traceset *ts, const es_policy *proto, uint64_t seed, uint32_t shuffles, int threads,
                    int32_t probe_cost, es_eval_acc *acc, es_error *err);

typedef enum es_oracle {
    ES_ORACLE_CONSISTENCY = 0, /* fewest first samples whose running majority stays the full majority */
    ES_ORACLE_CORRECTNESS = 1, /* fewest first samples to a correct running majority (uses gold) */
    ES_ORACLE_STABLE_FINAL = 2 /* each trace cut where its probes settle on its final answer */
} es_oracle;

/* "consistency" / "correctness" / "stable-final" */
ES_API const char *es_oracle_name(es_oracle which);

/* The oracles as rows, with the same orders and accumulators as policies. */
ES_API int es_eval_oracle(const es_traceset *ts, es_oracle which, uint64_t seed, uint32_t shuffle_begin,
                   uint32_t shuffle_end, es_eval_acc *acc);

/* Largest samples-per-item and answers-per-item of a set (for scratch sizes). */
ES_API void es_traceset_max_sizes(const es_traceset *ts, uint32_t *max_samples, uint32_t *max_answers);

/* ---------------------------------------------------------------- bootstrap */

/* Paired bootstrap over items: 95% interval of mean(a - b), B resamples from
 * `seed`.  Returns ES_ENOMEM or 0.  One-shot form of es_bootstrap below. */
ES_API int es_bootstrap_diff(const double *a, const double *b, size_t n, uint32_t resamples, uint64_t seed,
                      double *lo, double *hi);

/* The resamples of es_bootstrap_diff drawn once for n items, so that many
 * rows of one file (each paired against the same baseline) reuse them:
 * es_bootstrap_interval then costs B per item where a and b differ.
 * n x B 16-bit counts are held (1000 resamples of 2,000 items: 4 MB). */
typedef struct es_bootstrap es_bootstrap;
ES_API int es_bootstrap_new(size_t n, uint32_t resamples, uint64_t seed, es_bootstrap **out);
ES_API void es_bootstrap_free(es_bootstrap *b);
/* Same interval as es_bootstrap_diff(a, b, n, B, seed); not thread-safe on
 * one object (it sorts in the object's scratch). */
ES_API int es_bootstrap_interval(es_bootstrap *b, const double *a, const double *base, double *lo, double *hi);

/* ------------------------------------------------------------------ report */

/*
 * es_report: the figures `earlystop eval` prints, per row, over one trace
 * set: the baseline `full` (row 0), the policies added, the oracles.  Every
 * policy row is paired against the baseline (EM change with a paired
 * bootstrap interval, token reduction) and measured against the reference
 * oracle (stable-final on traces with probes, else consistency).  Rows are
 * means over items of per-item means over the orders replayed.
 */
typedef struct es_report_opts {
    uint32_t shuffles;     /* random orders (0 = the file order once) */
    uint64_t seed;         /* of the orders and the bootstrap */
    int threads;           /* 0 = one per core */
    int32_t probe_cost;    /* ES_PROBE_COST_FIELD or tokens per probe */
    uint32_t bootstrap;    /* resamples (0: no interval) */
} es_report_opts;

/* Defaults: file order, seed 1, all cores, cost field, 1000 resamples. */
ES_API void es_report_opts_init(es_report_opts *o);

typedef enum es_row_kind { ES_ROW_BASELINE = 0, ES_ROW_POLICY = 1, ES_ROW_ORACLE = 2 } es_row_kind;

typedef struct es_row_figures {
    double em;             /* exact match */
    double tokens;         /* mean tokens per item, probe cost included */
    double gen_tokens;     /* without probe cost */
    double samples, rounds, probes;
    double d_em;           /* EM minus the baseline's */
    double d_lo, d_hi;     /* its paired 95% bootstrap interval (NaN for oracle rows) */
    double reduction;      /* percent fewer tokens than the baseline */
    double oracle_x;       /* tokens / the reference oracle's tokens (NaN without oracle rows) */
} es_row_figures;

typedef struct es_report es_report;

/* Replays the baseline `full` (row 0); err says why when it cannot. */
ES_API int es_report_new(const es_traceset *ts, const es_report_opts *o, es_report **out, es_error *err);
ES_API void es_report_free(es_report *r);
/* Replays a clone of `proto` per thread into a new row.  A policy the data
 * cannot feed (deer without probe confidences; a probe rule on a file
 * without probes) still gets its row, marked failed with the reason:
 * returns that error, and the report goes on. */
ES_API int es_report_add_policy(es_report *r, const es_policy *proto, es_error *err);
/* The same, the row named `name` instead of the policy's canonical spec
 * (two learned stoppers from different files share a spec). */
ES_API int es_report_add_policy_as(es_report *r, const es_policy *proto, const char *name, es_error *err);
/* The oracle rows: consistency, correctness, and stable-final where the
 * traces carry probes. */
ES_API int es_report_add_oracles(es_report *r);

ES_API int es_report_n_rows(const es_report *r);
ES_API es_row_kind es_report_row_kind(const es_report *r, int row);
/* "full:max=all", a canonical policy spec, or "oracle:consistency" */
ES_API const char *es_report_row_name(const es_report *r, int row);
/* 0, or the error the row failed with (then es_report_row_error says why) */
ES_API int es_report_row_failed(const es_report *r, int row, const es_error **why);
/* The row of an oracle, -1 when not added. */
ES_API int es_report_oracle_row(const es_report *r, es_oracle which);
/* Per-item sums of a row over the orders replayed. */
ES_API const es_eval_acc *es_report_row_acc(const es_report *r, int row);
/* A row's figures; ES_ENOMEM (the bootstrap) or ES_EINVAL for a failed row. */
ES_API int es_report_figures(es_report *r, int row, es_row_figures *out);

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_REPLAY_H */
