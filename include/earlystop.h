/*
 * earlystop.h - public API of libearlystop, the core library.
 *
 * earlystop decides when a language model has thought enough: within one
 * sample (stop a chain of thought once probed answers are settled) and across
 * samples (stop drawing self-consistency samples once the vote is settled).
 *
 * The core library depends on libc and libm only, so that an inference engine
 * can embed it.  Reading and writing trace files (JSON) lives in a separate
 * layer, see earlystop_io.h.
 *
 * Conventions (SQLite style):
 *  - every symbol starts with es_ / ES_;
 *  - objects are opaque handles made by es_x_new() and released by es_x_free();
 *  - functions return 0 (ES_OK) or a negative ES_E* code; where a caller can
 *    act on more context, an es_error out-parameter (may be NULL) receives the
 *    file, line, field and a message;
 *  - nothing here keeps global mutable state; all state lives in handles.
 */
#ifndef EARLYSTOP_H
#define EARLYSTOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ES_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------ errors */

enum {
    ES_OK = 0,
    ES_ENOMEM = -1,   /* allocation failed */
    ES_EINVAL = -2,   /* bad argument or bad value in input */
    ES_EIO = -3,      /* read/write failure */
    ES_EPARSE = -4,   /* malformed input (JSON, spec string, ...) */
    ES_EFORMAT = -5,  /* well-formed input that breaks the trace format */
    ES_ERANGE = -6,   /* value out of range / capacity exceeded */
    ES_ENOTSUP = -7,  /* the input lacks what the operation needs */
    ES_EOF = -8       /* end of stream (not an error for readers' callers) */
};

/* Context for an error a user can act on.  Callers own it (stack is fine). */
typedef struct es_error {
    int code;          /* the ES_E* code also returned */
    long line;         /* 1-based line in `file`, 0 when not applicable */
    char file[256];    /* input file, "" when not applicable */
    char field[64];    /* offending field, e.g. "samples[3].tokens" */
    char msg[512];     /* human-readable message */
} es_error;

/* Static description of an ES_E* code ("out of memory", ...). */
const char *es_strerror(int code);

/* Fill err (if non-NULL) and return code.  printf-style message. */
int es_error_set(es_error *err, int code, const char *file, long line,
                 const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* Format "file:line: field: msg" into buf (always NUL-terminated). */
void es_error_format(const es_error *err, char *buf, size_t cap);

/* ----------------------------------------------------------------- answers */

/*
 * Answer types: how answers compare.  Each key is, case by case, the one the
 * shared data's reference figures use (ref_eval.py), on ASCII input:
 *  - number: the value rounded to 6 decimals: "$1,000.00" = "1000", "18.0" =
 *    "18", "28.000000000000004" = "28", "-0" = "0" (Python's float() syntax
 *    once ',' and '$' are dropped; "20%" and "18.0." are not numbers);
 *  - date: a whole-string date, trailing '.', ',', ';', '!' ignored: M/D/YYYY =
 *    YYYY-MM-DD = "May 2, 2021" = "2 May 2021" = "Sept. 1st, 2021" (month
 *    1-12, day 1-31); "Today is 09/07/2003." is not a date;
 *  - math: a LaTeX answer: white space, \left, \right, \!, \, \; \:,
 *    \displaystyle, degree signs, \% % \$ $ removed, \dfrac/\tfrac = \frac,
 *    \text{X} = \mbox{X} = X, one trailing '.' dropped, lower-cased; then a
 *    plain number (commas only as thousands separators) or an integer fraction
 *    (\frac{a}{b}, \frac ab, a/b, optional '-') keys as its value like a
 *    number, so "0.09" = "\frac{9}{100}" = "9/100", while "1+\sqrt{19}" !=
 *    "1-\sqrt{19}" and "(3,4]" != "[3,4]".
 */
typedef enum es_answer_type {
    ES_ANSWER_TEXT = 0,   /* lower-case, punctuation and articles removed, spaces folded */
    ES_ANSWER_NUMBER = 1, /* numeric value to 6 decimals: "$1,000.00" = "1000", "-0" = "0" */
    ES_ANSWER_DATE = 2,   /* M/D/YYYY = MM/DD/YYYY = YYYY-MM-DD = "May 2, 2021" */
    ES_ANSWER_CHOICE = 3, /* an option letter: "(B)" = "b" = "B." */
    ES_ANSWER_MATH = 4    /* a LaTeX answer: "0.09" = "\\frac{9}{100}", "[3,4]" != "(3,4]" */
} es_answer_type;

/* "text" / "number" / "date" / "choice" / "math" -> type (any case);
 * ES_EINVAL when unknown. */
int es_answer_type_parse(const char *name, es_answer_type *out);
const char *es_answer_type_name(es_answer_type t);

/*
 * Normalise answer `s` (n bytes, UTF-8) of type t into its canonical key,
 * written NUL-terminated to out (cap bytes).  Two answers are equal exactly
 * when their keys are equal.  Returns the key length, or ES_ERANGE when cap
 * is too small (ES_ENOMEM only for a math answer of 1 KiB or more with cap
 * no larger than the answer: it is cleaned in a heap copy).  A number or
 * date that does not parse as its type ("\\125", "Today is 5/1/2021.")
 * keeps its own spelling, trimmed and ASCII lower-cased, as its key: it still
 * matches itself and never equals a typed key.  This is what the reference
 * figures of the shared data use.
 */
int es_answer_normalize(es_answer_type t, const char *s, size_t n, char *out, size_t cap);

/* 1 when a and b are equal under type t, else 0.  NULL never equals anything. */
int es_answer_equal(es_answer_type t, const char *a, const char *b);

/* Token-level F1 of `pred` against `gold` (SQuAD-style, on text keys).  NULL -> 0. */
double es_answer_f1(const char *pred, const char *gold);

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
 * item into small integers 0..n_answers-1 in order of first appearance (all
 * samples first, in order, then probe answers), so a vote is integer counting
 * and ties can go to the lower id.  The null answer gets an id of its own
 * that is never correct.  Token counts live in flat arrays.
 */
typedef struct es_traceset es_traceset;

enum { ES_KEEP_TEXT = 1 };   /* es_traceset_new flags: keep sample texts and questions */

int es_traceset_new(unsigned flags, es_traceset **out);
void es_traceset_free(es_traceset *ts);

/* Copy `item` in.  ES_EFORMAT on an item that breaks the format. */
int es_traceset_add(es_traceset *ts, const es_item *item, es_error *err);

size_t es_traceset_n_items(const es_traceset *ts);
size_t es_traceset_n_samples(const es_traceset *ts);   /* total over items */
size_t es_traceset_n_probes(const es_traceset *ts);    /* total over samples */
/* Bytes held by the set (for memory reports). */
size_t es_traceset_bytes(const es_traceset *ts);

/* Read-only view of one item, pointing into the set's flat arrays. */
typedef struct es_item_view {
    const char *id;
    const char *task;
    es_answer_type answer_type;
    uint32_t n_samples;
    uint32_t n_answers;            /* distinct answers (null included) */
    int32_t null_answer;           /* id of the null answer, -1 if none occurs */
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
    const char *gold;              /* first gold answer, raw */
    /* probes of sample s are probe_*[probe_off[s] .. probe_off[s+1]); the
     * probe_* arrays are the whole set's, probe_off holds indices into them */
    const uint32_t *probe_off;     /* [n_samples + 1] */
    const uint32_t *probe_at;
    const int32_t *probe_answer;
    const float *probe_confidence;
    const float *probe_window_confidence;
    const int32_t *probe_cost;     /* -1 where absent */
    const char *const *text;       /* [n_samples] or NULL when texts were dropped */
} es_item_view;

/* The view points into the set: valid until the next es_traceset_add. */
int es_traceset_item(const es_traceset *ts, size_t i, es_item_view *out);

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

int es_stats_compute(const es_traceset *ts, es_stats *out);

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

int es_dup_new(es_dup **out);
void es_dup_free(es_dup *d);
/* One item's sample texts (texts[i] NULL: sample i has none).  Allocates
 * only when an item has more samples than any before. */
int es_dup_add(es_dup *d, const char *const *texts, size_t n);
int es_dup_add_item(es_dup *d, const es_item *item);
void es_dup_get(const es_dup *d, es_dup_stats *out);
/* dup_samples / text_samples; NaN when no sample carries a text. */
double es_dup_rate(const es_dup_stats *s);
/* 1 when the copy rule fires: patterns in >= 2 items and >= half the checked ones. */
int es_dup_suspicious(const es_dup_stats *s);
/* The warning sentence for a suspicious set. */
void es_dup_describe(const es_dup_stats *s, char *buf, size_t cap);
/* 64-bit FNV-1a of s[0..n). */
uint64_t es_text_hash(const char *s, size_t n);

/* Majority of answers[0..n): ties go to the answer seen first.  counts must
 * hold n_answers zeroed ints and is left zeroed again (no allocation). */
int32_t es_vote_majority(const int32_t *answers, uint32_t n, uint32_t *counts, uint32_t n_answers);

/* Fewest first samples whose running majority equals the full majority from
 * then on.  Same scratch contract as es_vote_majority. */
uint32_t es_consistency_oracle(const int32_t *answers, uint32_t n, uint32_t *counts, uint32_t n_answers);

/* Stable-final oracle of one trace: `at` of the earliest probe from which
 * every later probe equals `final_answer`; `total_tokens` when the last
 * probe differs or there are no probes. */
uint32_t es_stable_final_tokens(const uint32_t *at, const int32_t *ans, uint32_t n_probes,
                                int32_t final_answer, uint32_t total_tokens);

/* ---------------------------------------------------------------- policies */

/*
 * es_policy: a stopping rule fed events in the order an LM system produces
 * them.  The same object serves a live generation loop and a replay.  It is
 * deterministic and allocates nothing per event (only es_policy_new and, when
 * a question needs more room than any before, es_policy_begin_item allocate).
 *
 * Answers are small integers the caller interns (es_interner below, or the ids
 * of an es_traceset); the null answer is an id like any other, marked with
 * es_policy_begin_item's null_answer so rules can skip it where they must.
 *
 * Event order for one question:
 *   es_policy_begin_item
 *   repeat per sample:
 *     es_policy_begin_sample
 *     es_policy_token / es_policy_probe ...   -> ES_STOP ends this sample
 *     es_policy_end_sample                    -> ES_STOP: draw no more samples
 *   es_policy_answer                           -> the final answer id
 *
 * Spec strings name a policy on the command line: "ac-beta:threshold=0.95",
 * "esc:window=5", "dynasor:k=3", "deer:threshold=0.95".  A within-sample rule
 * and an across-sample rule combine with '+': "dynasor:k=3+ac-beta".  A spec
 * starting with '@' names a JSON file (loaded by the io layer, see
 * earlystop_io.h: es_policy_spec_load).
 */
typedef struct es_policy es_policy;

enum { ES_CONTINUE = 0, ES_STOP = 1 };

int es_policy_new(const char *spec, es_policy **out, es_error *err);
void es_policy_free(es_policy *p);

/* Canonical spec with every parameter spelled out ("esc:window=5"). */
const char *es_policy_spec(const es_policy *p);

/* Start a question.  max_samples: samples the caller would draw at most (0 =
 * unknown); answer ids passed later are < max_answers; null_answer: the id of
 * the null answer, or -1.  May allocate when max_answers exceeds every earlier
 * question's (never per event). */
int es_policy_begin_item(es_policy *p, uint32_t max_samples, uint32_t max_answers, int32_t null_answer);
int es_policy_begin_sample(es_policy *p);

/* Optional per-token event: log-probability of the sampled token and, where
 * the engine has them, DeepConf's token confidence (negative mean log-prob of
 * the top-k alternatives; NaN if unknown).  Returns ES_CONTINUE / ES_STOP. */
int es_policy_token(es_policy *p, float logprob, float token_confidence);

/* A probe inside the running sample: tokens generated so far, probed answer,
 * its mean token probability (NaN if unknown) and the sliding-window
 * confidence at this point (NaN if unknown).  ES_STOP ends the sample. */
int es_policy_probe(es_policy *p, uint32_t at, int32_t answer, float confidence,
                    float window_confidence);

/* The sample ended (by itself or after ES_STOP), with its final answer (for a
 * stopped sample: the answer the policy gave, es_policy_sample_answer), its
 * tokens and confidence.  ES_STOP: draw no more samples. */
int es_policy_end_sample(es_policy *p, int32_t answer, uint32_t tokens, float confidence);

/* Answer of the current sample if it was stopped early (the last probe's). */
int32_t es_policy_sample_answer(const es_policy *p);

/* Final answer of the question (after the last end_sample). */
int32_t es_policy_answer(const es_policy *p);

/* Within-sample token cap (budget:tokens=T), UINT32_MAX when none: the caller
 * stops a sample there and forces its answer (s1-style budget forcing). */
uint32_t es_policy_token_limit(const es_policy *p);

/* 1 when the policy has a within-sample rule (probes are worth making). */
int es_policy_probes(const es_policy *p);

/* Probe points late that the policy reads a probe: 0, or 1 for Dynasor's
 * timing (dynasor, decide=after-chunk), where the probe of the prefix runs
 * beside the next chunk and is read once that chunk is generated.  With 1,
 * feed probe j's answer when the sample reaches probe j+1 (ES_STOP then ends
 * the sample there, and probe j+1 need not be made), and never feed the last
 * probe of a sample that ends first.  es_replay_item does this. */
uint32_t es_policy_probe_lag(const es_policy *p);

/* Samples drawn at once per round: 1 for sequential rules, the window for
 * ESC, every sample for full and sample budgets (0 = all). */
uint32_t es_policy_batch(const es_policy *p);

/* Last error detail (e.g. "deer needs probe confidences"), "" if none. */
const char *es_policy_errmsg(const es_policy *p);

/* ---------------------------------------------------------------- interner */

/*
 * es_interner: maps answers to ids 0,1,2,... by canonical key, for live use.
 * Fixed capacity chosen at creation, so interning allocates nothing.
 * es_interner_reset forgets all answers (per question).
 */
typedef struct es_interner es_interner;

/* max_answers counts every id, the null answer's included; max_key_bytes is
 * the total size of all keys held at once (not per key): size it for every
 * answer a question can produce, or interning fails with ES_ERANGE. */
int es_interner_new(es_answer_type t, uint32_t max_answers, size_t max_key_bytes,
                    es_interner **out);
void es_interner_free(es_interner *in);
void es_interner_reset(es_interner *in);
/* id of answer s (NULL = the null answer); ES_ERANGE when full. */
int32_t es_interner_intern(es_interner *in, const char *s);
/* Canonical key of id, NULL for the null answer. */
const char *es_interner_key(const es_interner *in, int32_t id);
uint32_t es_interner_count(const es_interner *in);

/* ------------------------------------------------------------------ replay */

/* What one policy did on one item. */
typedef struct es_outcome {
    int32_t answer;          /* final answer id */
    uint8_t correct;
    uint32_t samples;        /* samples drawn */
    uint32_t rounds;         /* sequential steps (a batch drawn at once is one) */
    uint32_t probes;         /* probes made */
    uint64_t tokens;         /* generated tokens up to each sample's stop */
    uint64_t probe_tokens;   /* tokens the probes themselves spent */
} es_outcome;

/* probe_cost for es_replay_item: take each probe's own `cost` field (0 where
 * absent), or charge a fixed number of tokens per probe when >= 0. */
enum { ES_PROBE_COST_FIELD = -1 };

/*
 * Replay policy p on one recorded item, samples in `order` (NULL = file
 * order), as a live loop would have run it: probes are fed while the within
 * rule asks for them, a sample stopped early ends at that probe's `at` with
 * the probed answer, a token budget cuts a sample at its cap answering the
 * last probe at or before it (null if none).  Allocates nothing.
 */
int es_replay_item(es_policy *p, const es_item_view *v, const uint32_t *order, int32_t probe_cost,
                   es_outcome *out);

/* Per-item sums over orders, kept as integers so that the totals do not
 * depend on how shuffles are split across threads. */
typedef struct es_eval_acc {
    uint64_t correct, samples, rounds, probes, tokens, probe_tokens;
} es_eval_acc;

/* Random order number `shuffle` of an item with n samples: a pure function
 * of (seed, shuffle, item), so any thread can make any order. */
void es_shuffle_order(uint64_t seed, uint32_t shuffle, uint32_t item, uint32_t n, uint32_t *order);

/*
 * Replay p on every item of ts for orders [shuffle_begin, shuffle_end),
 * adding into acc[item].  shuffle_begin == shuffle_end == 0 replays the file
 * order once.  Allocates its order buffers per call, nothing per item.  On
 * error the policy's es_policy_errmsg says why and *bad_item names the item.
 */
int es_eval_policy(const es_traceset *ts, es_policy *p, uint64_t seed, uint32_t shuffle_begin,
                   uint32_t shuffle_end, int32_t probe_cost, es_eval_acc *acc, size_t *bad_item);

typedef enum es_oracle {
    ES_ORACLE_CONSISTENCY = 0, /* fewest first samples whose running majority stays the full majority */
    ES_ORACLE_CORRECTNESS = 1, /* fewest first samples to a correct running majority (uses gold) */
    ES_ORACLE_STABLE_FINAL = 2 /* each trace cut where its probes settle on its final answer */
} es_oracle;

/* The oracles as rows, with the same orders and accumulators as policies. */
int es_eval_oracle(const es_traceset *ts, es_oracle which, uint64_t seed, uint32_t shuffle_begin,
                   uint32_t shuffle_end, es_eval_acc *acc);

/* Largest samples-per-item and answers-per-item of a set (for scratch sizes). */
void es_traceset_max_sizes(const es_traceset *ts, uint32_t *max_samples, uint32_t *max_answers);

/* Paired bootstrap over items: 95% interval of mean(a - b), B resamples from
 * `seed`.  Returns ES_ENOMEM or 0.  One-shot form of es_bootstrap below. */
int es_bootstrap_diff(const double *a, const double *b, size_t n, uint32_t resamples, uint64_t seed,
                      double *lo, double *hi);

/* The resamples of es_bootstrap_diff drawn once for n items, so that many
 * rows of one file (each paired against the same baseline) reuse them:
 * es_bootstrap_interval then costs B per item where a and b differ.
 * n x B 16-bit counts are held (1000 resamples of 2,000 items: 4 MB). */
typedef struct es_bootstrap es_bootstrap;
int es_bootstrap_new(size_t n, uint32_t resamples, uint64_t seed, es_bootstrap **out);
void es_bootstrap_free(es_bootstrap *b);
/* Same interval as es_bootstrap_diff(a, b, n, B, seed); not thread-safe on
 * one object (it sorts in the object's scratch). */
int es_bootstrap_interval(es_bootstrap *b, const double *a, const double *base, double *lo, double *hi);

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_H */
