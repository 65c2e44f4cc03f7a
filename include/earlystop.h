/*
 * earlystop.h - public API of libearlystop, the core library.
 *
 * earlystop decides when a language model has thought enough: within one
 * sample (stop a chain of thought once probed answers are settled) and across
 * samples (stop drawing self-consistency samples once the vote is settled).
 *
 * The core depends on libc and libm only, so that an inference engine can
 * embed it: answers, the interner, the vote tally, policies with their rules
 * and the session that drives them.  The layers above it have headers of
 * their own: earlystop_replay.h (recorded traces in memory, replay,
 * oracles, reports), earlystop_io.h (JSON trace files, import, policy
 * files), earlystop_lm.h (the built-in model).  docs/architecture.md.
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

/* What the shared libraries export: the library is built with
 * -fvisibility=hidden, so everything else stays inside it. */
#if defined(__GNUC__) || defined(__clang__)
#define ES_API __attribute__((visibility("default")))
#else
#define ES_API
#endif

#define ES_VERSION_MAJOR 0
#define ES_VERSION_MINOR 2
#define ES_VERSION_PATCH 0
#define ES_VERSION_STRING "0.2.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if checks */
#define ES_VERSION_NUMBER (ES_VERSION_MAJOR * 10000 + ES_VERSION_MINOR * 100 + ES_VERSION_PATCH)

/* The version of the library linked at run time (may differ from the
 * header's when the shared library was upgraded). */
ES_API const char *es_version(void);

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
ES_API const char *es_strerror(int code);

/* Fill err (if non-NULL) and return code.  printf-style message. */
ES_API int es_error_set(es_error *err, int code, const char *file, long line,
                 const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/* Format "file:line: field: msg" into buf (always NUL-terminated). */
ES_API void es_error_format(const es_error *err, char *buf, size_t cap);

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
ES_API int es_answer_type_parse(const char *name, es_answer_type *out);
ES_API const char *es_answer_type_name(es_answer_type t);

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
ES_API int es_answer_normalize(es_answer_type t, const char *s, size_t n, char *out, size_t cap);

/* 1 when a and b are equal under type t, else 0.  NULL never equals anything. */
ES_API int es_answer_equal(es_answer_type t, const char *a, const char *b);

/* Token-level F1 of `pred` against `gold` (SQuAD-style, on text keys).  NULL -> 0. */
ES_API double es_answer_f1(const char *pred, const char *gold);

/* 1 when `key`, a canonical key of type t (es_answer_normalize), is a
 * well-formed answer of its type, generic and without task knowledge: a
 * number or date that parses as one, an option letter, a math answer of at
 * most 40 characters with balanced braces, a text answer of 1-40 letters,
 * digits, spaces, apostrophes and hyphens in at most 4 words.  NULL (the
 * null answer) is not.  Junk extractions ("if jane is correct then ...")
 * can win a vote without being settled: the learned stopper reads this. */
ES_API int es_answer_wellformed(es_answer_type t, const char *key);

/* Bits of a per-answer flag array a driver may hand a policy
 * (es_session_set_answer_flags). */
enum { ES_ANSWER_WELLFORMED = 1 };

/* ---------------------------------------------------------------- answer ids */

/*
 * Answers reach a policy as small integer ids.  Id 0 is always the null
 * answer (none could be extracted): one distinct value in a vote, never
 * correct, never a probe's agreement.  Real answers get 1, 2, ... in order
 * of first appearance (es_interner below; es_traceset does the same).
 */
#define ES_NULL_ANSWER 0

/*
 * es_interner: maps answers to ids by canonical key, for live use.  Fixed
 * capacity chosen at creation, so interning allocates nothing.
 * es_interner_reset forgets all answers (per question).
 */
typedef struct es_interner es_interner;

/* max_answers counts every id, the null answer's included; max_key_bytes is
 * the total size of all keys held at once (not per key): size it for every
 * answer a question can produce, or interning fails with ES_ERANGE. */
ES_API int es_interner_new(es_answer_type t, uint32_t max_answers, size_t max_key_bytes,
                    es_interner **out);
ES_API void es_interner_free(es_interner *in);
ES_API void es_interner_reset(es_interner *in);
/* id of answer s (NULL: ES_NULL_ANSWER); ES_ERANGE when full. */
ES_API int32_t es_interner_intern(es_interner *in, const char *s);
/* Canonical key of id, NULL for the null answer. */
ES_API const char *es_interner_key(const es_interner *in, int32_t id);
/* ids handed out, the null answer's included (>= 1) */
ES_API uint32_t es_interner_count(const es_interner *in);

/* ------------------------------------------------------------------- votes */

/*
 * es_tally: the vote count every rule, oracle and summary uses.  The leader
 * and the top two counts stay current in O(1) per vote; ties go to the
 * answer whose first vote came first (the order votes were cast, not the id
 * order), which is the reference convention and what a live run sees.
 * Allocates only in es_tally_new / es_tally_reserve.
 */
typedef struct es_tally es_tally;

ES_API int es_tally_new(uint32_t max_answers, es_tally **out);
ES_API void es_tally_free(es_tally *t);
/* Forget the votes and make room for ids < max_answers. */
ES_API int es_tally_reserve(es_tally *t, uint32_t max_answers);
/* Forget the votes (O(answers voted)). */
ES_API void es_tally_reset(es_tally *t);
/* One vote; ES_ERANGE for an id out of range. */
ES_API int es_tally_add(es_tally *t, int32_t answer);
ES_API int32_t es_tally_leader(const es_tally *t);                  /* -1 before any vote */
ES_API uint32_t es_tally_top(const es_tally *t, uint32_t *second);  /* leader's count (and the runner-up's) */
ES_API uint32_t es_tally_count(const es_tally *t, int32_t answer);
ES_API uint32_t es_tally_distinct(const es_tally *t);
ES_API uint32_t es_tally_votes(const es_tally *t);

/* Majority of answers[0..n), ties to the answer seen first; t is used as
 * scratch (room for every id) and left reset. */
ES_API int32_t es_vote_majority(const int32_t *answers, uint32_t n, es_tally *t);

/* Fewest first samples whose running majority equals the full majority from
 * then on (the consistency oracle).  Same scratch contract. */
ES_API uint32_t es_consistency_oracle(const int32_t *answers, uint32_t n, es_tally *t);

/* ---------------------------------------------------------------- policies */

/*
 * es_policy: a stopping rule fed events in the order an LM system produces
 * them: one within-sample rule (decides on probes and tokens) and one
 * across-sample rule (decides on the samples' answers), named by a spec:
 * "ac-beta:threshold=0.95", "esc:window=5", "dynasor:k=3+ac-beta".  A spec
 * starting with '@' names a JSON file (loaded by the io layer,
 * es_policy_new_any in earlystop_io.h).  `earlystop eval --help` lists the
 * rules and their parameters; docs/policies.md says where each comes from.
 *
 * It is deterministic and allocates nothing per event (only es_policy_new,
 * es_policy_clone, es_policy_set_param and, when a question has more answers
 * than any before, es_policy_begin_item allocate).  Most callers drive it
 * through an es_session (below), which owns the event protocol; the raw
 * events are:
 *   es_policy_begin_item
 *   repeat per sample:
 *     es_policy_begin_sample
 *     es_policy_token / es_policy_probe ...   -> ES_STOP ends this sample
 *     es_policy_end_sample                    -> ES_STOP: draw no more samples
 *   es_policy_answer                           -> the final answer id
 */
typedef struct es_policy es_policy;

enum { ES_CONTINUE = 0, ES_STOP = 1, ES_SKIP = 2 /* es_session_reach: no probe here */ };

ES_API int es_policy_new(const char *spec, es_policy **out, es_error *err);
/* A fresh policy with the same rules and parameters, without parsing: the
 * factory a threaded evaluator or a server gives each thread. */
ES_API int es_policy_clone(const es_policy *proto, es_policy **out, es_error *err);
ES_API void es_policy_free(es_policy *p);

/* Canonical spec with every parameter spelled out ("esc:window=5,..."): it
 * round-trips through es_policy_new. */
ES_API const char *es_policy_spec(const es_policy *p);

/* What a driver needs to know about a policy. */
typedef struct es_policy_info {
    int has_within;        /* a within-sample rule: probes are worth feeding */
    int needs_probes;      /* it decides on probes (a token budget alone does not) */
    uint32_t token_limit;  /* within-sample token cap (budget:tokens), UINT32_MAX = none:
                              the caller stops a sample there and its answer is forced */
    uint32_t probe_lag;    /* 1: a probe is read when the sample reaches the next
                              probe point (Dynasor's cot.py), 0: at once */
    uint32_t probe_every;  /* the within rule reads every m-th probe point (its
                              `every`; 1 = all): the others are not made */
    uint32_t batch;        /* samples drawn at once per round: 1 sequential, the
                              window for ESC, 0 = every sample (full) */
    int counts_only;       /* the stop points depend on the answers' sequence alone */
    int reads_cues;        /* the within rule reads text cues: a free text probe at each
                              line or paragraph end (ES_CUE_*) serves it, and a live
                              driver makes those rather than forced probes */
    int needs_cues;        /* it stops only on probes that carry cues: a probe without
                              them is not worth making (the replay skips such probes;
                              a driver that cannot make text probes makes none) */
} es_policy_info;

ES_API void es_policy_get_info(const es_policy *p, es_policy_info *out);

/* Sequential rounds that drawing `samples` samples took (batches count once). */
ES_API uint32_t es_policy_rounds(const es_policy *p, uint32_t samples);

/* --- parameters: read and moved on a live policy, between questions. */

typedef struct es_param_info {
    const char *rule;      /* the rule it belongs to ("ac-beta") */
    const char *key;       /* "threshold" */
    double value;
    double lo, hi;         /* the range a value must lie in */
    int integer;           /* whole numbers only */
    const char *choices;   /* "draw|skip" for a choice (value = index), else NULL */
    const char *word;      /* a word that stands for word_value ("all" for max = 0), or NULL */
    double word_value;
    const char *doc;
} es_param_info;

/* Parameters of both rules, in spec order. */
ES_API uint32_t es_policy_n_params(const es_policy *p);
ES_API int es_policy_param(const es_policy *p, uint32_t i, es_param_info *out);

/* Set a parameter by "key" or "rule.key" (e.g. "threshold", "esc.window").
 * The rule rebuilds what depends on it (AC-beta's table) here, not on the
 * decision path; a value out of range, or one the rule cannot combine with
 * its other settings, is refused and the old value kept.  Call between
 * questions.  set_param_text also takes words ("all", "skip"). */
ES_API int es_policy_set_param(es_policy *p, const char *key, double value, es_error *err);
ES_API int es_policy_set_param_text(es_policy *p, const char *key, const char *text, es_error *err);
ES_API int es_policy_get_param(const es_policy *p, const char *key, double *value, es_error *err);

/* --- exact sweeps (earlystop tune): where the decision would change */

/* The across rule's parameter a tuner can sweep exactly ("threshold" for
 * ac-beta), in *key; ES_ENOTSUP when the rule has none (esc). */
ES_API int es_policy_sweep_param(const es_policy *p, const char **key);
/* Observe mode: the across rule still counts and decides, but only the
 * sample cap (and clinch=on, whose answer is already the full run's) stops
 * the question, so a replay sees every sample while es_policy_boundary
 * says, after each, at which parameter values the rule would have stopped
 * there.  on = ES_OBSERVE_ALL: clinch does not stop either, so every sample
 * up to the cap is drawn (an audit whose samples the controller reorders).
 * ES_ENOTSUP when the rule cannot be swept. */
enum { ES_OBSERVE_ALL = 2 };
ES_API int es_policy_observe(es_policy *p, int on);
enum { ES_BOUND_NEVER = 0, ES_BOUND_UPPER = 1, ES_BOUND_LOWER = -1 };
/* After an end_sample in observe mode: the rule would have stopped here at
 * every value t <= *b (ES_BOUND_UPPER) or t >= *b (ES_BOUND_LOWER), or at
 * none (ES_BOUND_NEVER: below its `min`). */
ES_API int es_policy_boundary(const es_policy *p, double *b);

/* --- the rules a spec can name (the catalogue `eval --help` prints) */

typedef struct es_rule_info {
    const char *name;      /* "ac-beta" */
    const char *doc;       /* one line */
    int within, across;    /* the levels it can serve */
    uint32_t n_params;
} es_rule_info;

ES_API uint32_t es_rule_count(void);
ES_API int es_rule_get(uint32_t i, es_rule_info *out);
/* Parameter k of rule i, its default as `value`. */
ES_API int es_rule_param(uint32_t i, uint32_t k, es_param_info *out);

/* --- events */

/* Start a question.  max_samples: samples the caller would draw at most (0 =
 * unknown); answer ids passed later are < max_answers (the null answer's id
 * 0 included).  May allocate when max_answers exceeds every earlier
 * question's (never per event). */
ES_API int es_policy_begin_item(es_policy *p, uint32_t max_samples, uint32_t max_answers);
ES_API int es_policy_begin_sample(es_policy *p);

/* Optional per-token event: log-probability of the sampled token and, where
 * the engine has them, DeepConf's token confidence (negative mean log-prob of
 * the top-k alternatives; NaN if unknown).  Returns ES_CONTINUE / ES_STOP. */
ES_API int es_policy_token(es_policy *p, float logprob, float token_confidence);

/*
 * Text cues at a probe point: what the reasoning's text says there, read by
 * es_text_cues from the paragraph that ends at the probe (docs/trace-format.md,
 * "Probe cues").  ES_CUE_READ says the cues were read at all: 0 means
 * unknown (no text), and the learned stopper marks the cue features missing.
 *   ES_CUE_CONCLUDE  the paragraph states a conclusion ("Therefore", "the
 *                    answer is", "final answer", a \boxed{})
 *   ES_CUE_CHECK     it begins a re-check ("Wait", "Let me double-check")
 *   ES_CUE_END       the reasoning ends here (the thinking is closed next:
 *                    what follows is the answer written out)
 */
enum { ES_CUE_CONCLUDE = 1, ES_CUE_CHECK = 2, ES_CUE_END = 4, ES_CUE_READ = 8 };

/* The cues of one paragraph of reasoning (text[0..n), no terminator needed):
 * ES_CUE_READ | ES_CUE_CONCLUDE / ES_CUE_CHECK as its words say (English;
 * case-insensitive, whole words).  ES_CUE_END is the caller's: only it knows
 * what follows.  Allocates nothing. */
ES_API uint32_t es_text_cues(const char *text, size_t n);

/*
 * Paragraphs of reasoning as a text grows (src/core/paragraph.c): the one
 * splitter behind paragraph-end probes, live (`record --probe-at
 * paragraphs`, the proxy) and on stored texts (es_paragraph_cues).  The
 * reasoning is the text before the first "</think>" (all of it when there is
 * none); a blank line ('\n', spaces/tabs/'\r', '\n') ends a paragraph, and
 * paragraphs of white space only are skipped.  A paragraph is handed out
 * once it is known whether the thinking closes right after it (blank lines
 * then "</think>"): ES_CUE_END in *flags then.  Allocates nothing.
 */
typedef struct es_para_split {
    size_t start;              /* where the current paragraph starts */
    size_t scan;               /* scanned up to here (text before is known) */
    size_t pend_a, pend_b;     /* a paragraph ended by a blank line, waiting to know what follows */
    size_t pend_next;          /* where the text after its blank line starts (spaces skipped so far) */
    size_t ws;                 /* a blank line undecided at `scan`: its spaces are known up to here */
    int pending, done;
} es_para_split;

ES_API void es_para_split_init(es_para_split *p);
/* The next paragraph of text[0..n): the text so far, which may only grow
 * between calls (same bytes, more of them).  final: the text is complete
 * (the paragraph it ends in counts).  Returns 1 with the paragraph in
 * [*a, *b) and *flags = ES_CUE_END when the thinking closes right after it
 * (else 0), or 0 when no paragraph is complete yet. */
ES_API int es_para_split_next(es_para_split *p, const char *text, size_t n, int final, size_t *a, size_t *b,
                              uint32_t *flags);

/* The last number written in text[0..n) (the text proxy of the *_think
 * files): an optional '-' right before digits, thousands groups ",ddd"
 * (removed in the copy), an optional ".digits".  1 with it in out[cap]
 * (cut at cap - 1 bytes), or 0 when there is none. */
ES_API int es_text_last_number(const char *text, size_t n, char *out, size_t cap);

/* A probe inside the running sample: tokens generated so far, probed answer,
 * its mean token probability (NaN if unknown), the sliding-window confidence
 * at this point (NaN if unknown) and the text cues there (ES_CUE_*, 0 if
 * unknown).  ES_STOP ends the sample. */
ES_API int es_policy_probe(es_policy *p, uint32_t at, int32_t answer, float confidence,
                    float window_confidence, uint32_t cues);

/* The sample ended (by itself or after ES_STOP), with its final answer (for a
 * stopped sample: the answer the policy gave, es_policy_sample_answer), its
 * tokens and confidence.  ES_STOP: draw no more samples. */
ES_API int es_policy_end_sample(es_policy *p, int32_t answer, uint32_t tokens, float confidence);

/* Answer of the current sample if the within rule stopped it (-1: the
 * stopping probe's). */
ES_API int32_t es_policy_sample_answer(const es_policy *p);

/* Final answer of the question (after the last end_sample). */
ES_API int32_t es_policy_answer(const es_policy *p);

/* Last error detail (e.g. "deer needs probe confidences"), "" if none. */
ES_API const char *es_policy_errmsg(const es_policy *p);

/* What the driver knows about the question's answers: flags[id] for every
 * id < max_answers (ES_ANSWER_WELLFORMED), borrowed until the question ends;
 * NULL = unknown (the learned stopper then marks those features missing).
 * Call after es_policy_begin_item (which forgets the last question's); ids
 * interned later may have their flags filled in later, before their first
 * event. */
ES_API void es_policy_set_answer_flags(es_policy *p, const uint8_t *flags);

/* ---------------------------------------------------------- learned stoppers */

/*
 * The learned stopper (rule `learned`, docs/learning.md) scores the state of
 * a question with a small model on features computed incrementally from the
 * events, and stops once the score reaches a threshold.  The features are a
 * fixed catalogue; a model names the ones it reads.  Across samples they
 * are computed after each finished sample, within a sample at each probe.
 * A feature the events cannot give (confidences a trace lacks, the flags of
 * answers no driver set) is missing: NaN here, 0 after normalisation.
 */
enum { ES_AT_WITHIN = 1, ES_AT_ACROSS = 2 };

typedef struct es_feature_info {
    const char *name;    /* "margin" */
    int level;           /* ES_AT_WITHIN or ES_AT_ACROSS */
    const char *doc;
    int cue;             /* 1: read from a probe's text cues (ES_CUE_*), missing without them */
} es_feature_info;

ES_API uint32_t es_feature_count(void);
ES_API int es_feature_get_info(uint32_t id, es_feature_info *out);      /* ES_ERANGE past the end */
ES_API int es_feature_find(const char *name, uint32_t *id);             /* ES_EINVAL when unknown */

/*
 * es_features: the incremental feature tracker the rule uses, for callers
 * that build training data (src/learn) or check it.  Fed the events a
 * policy sees; es_features_get writes every feature of one level (NaN where
 * missing, the other level's entries NaN too) into out[es_feature_count()].
 * Allocates only in _new and when a question has more answers than any
 * before (begin_item).
 */
typedef struct es_features es_features;

ES_API int es_features_new(es_features **out);
ES_API void es_features_free(es_features *f);
/* max_samples: the caller's sample cap (0 = unknown); flags as in
 * es_policy_set_answer_flags (NULL = unknown). */
ES_API int es_features_begin_item(es_features *f, uint32_t max_samples, uint32_t max_answers, const uint8_t *flags);
ES_API int es_features_sample(es_features *f, int32_t answer, uint32_t tokens, float confidence); /* ES_EINVAL: id out of range */
ES_API void es_features_begin_sample(es_features *f);
ES_API int es_features_probe(es_features *f, uint32_t at, int32_t answer, float confidence, float window_confidence,
                             uint32_t cues);
ES_API void es_features_get(const es_features *f, int level, double *out);

/*
 * es_stopper: a learned stopper's weights, immutable once made and shared
 * (reference-counted) by every policy and clone that uses it, on any
 * thread.  Per level a head: the features it reads, their normalisation
 * (z = (x - mean) / scale clipped to [-clip, clip]; missing: z = 0, or no
 * score at all for the inputs the head requires), and one
 * or two nets whose weighted outputs add up to the score; a net is linear in
 * z or has one tanh hidden layer of at most ES_STOPPER_MAX_HIDDEN units, with
 * an optional logistic output.  The operating points say which thresholds
 * hold which EM budget (calibrated by Learn-then-Test when trained).  The
 * io layer reads and writes them as JSON (es_stopper_load, es_stopper_save).
 */
enum { ES_STOPPER_MAX_HIDDEN = 64, ES_STOPPER_MAX_INPUTS = 64, ES_STOPPER_MAX_POINTS = 32, ES_STOPPER_MAX_ALT = 8 };

typedef struct es_stopper_net {
    uint32_t hidden;        /* 0: linear in z */
    const double *w1;       /* [hidden][n_in] */
    const double *b1;       /* [hidden] */
    const double *w2;       /* [hidden], or [n_in] when hidden = 0 */
    double b2;
    int sigmoid;            /* 1: the output goes through the logistic function */
    double weight;          /* the output enters the score times this */
} es_stopper_net;

typedef struct es_stopper_head {
    uint32_t n_in;          /* 0: no head at this level */
    const uint32_t *feature;/* [n_in] feature ids, each of this head's level */
    const double *mean;     /* [n_in] */
    const double *scale;    /* [n_in], > 0 */
    double clip;            /* > 0 */
    uint32_t n_nets;        /* 1 or 2 */
    es_stopper_net net[2];
    /* Bit i set: input i must be present for the head to score; where it is
     * missing the score is NaN and the head never stops.  For a head trained
     * where a signal was always there (probe confidences), so that it does not
     * extrapolate to traces without it (docs/learning.md). */
    uint64_t required;
    /* Within: the probe spacing it was trained at (it read every m-th probe
     * point; 0 = 1).  `learned` reads probes so spaced unless told `every`. */
    uint32_t every;
} es_stopper_head;

typedef struct es_stopper_desc {
    es_stopper_head within, across;
    uint32_t n_points;              /* operating points, at least 1 */
    const double *max_em_drop;      /* [n_points] EM budgets in points, strictly ascending */
    const double *threshold;        /* [n_points] across thresholds (NaN where no across head) */
    const double *probe_threshold;  /* [n_points] within thresholds (NaN where no within head) */
    /* More across heads, for operating points that another model serves
     * best (learn chooses per budget among feature sets and lambdas): point
     * i scores with across_alt[across_pick[i] - 1] where across_pick[i] > 0,
     * else with `across`.  across_pick NULL: every point uses `across`. */
    uint32_t n_across_alt;              /* at most ES_STOPPER_MAX_ALT */
    const es_stopper_head *across_alt;  /* [n_across_alt] */
    const uint32_t *across_pick;        /* [n_points] or NULL */
} es_stopper_desc;

typedef struct es_stopper es_stopper;

/* A copy of d, checked (ES_EINVAL with the field in err).  Refcount 1. */
ES_API int es_stopper_new(const es_stopper_desc *d, es_stopper **out, es_error *err);
/* Drop one reference (the policies made with it hold their own). */
ES_API void es_stopper_free(es_stopper *m);
/* Its arrays, valid while m lives. */
ES_API void es_stopper_get(const es_stopper *m, es_stopper_desc *out);
/* The stopper shipped in the library (`learned`, data/stopper.json); NULL
 * when the build has none.  Never freed. */
ES_API const es_stopper *es_stopper_builtin(void);
/* The score of one level's head on raw features x[es_feature_count()] (NaN
 * = missing); NaN when m has no head there.  Across: the head `across`;
 * es_stopper_score_at scores with the head of operating point `point`. */
ES_API double es_stopper_score_at(const es_stopper *m, uint32_t point, int level, const double *x);
ES_API double es_stopper_score(const es_stopper *m, int level, const double *x);

/* es_policy_new with this stopper for the rules that take one (`learned`;
 * without one they use es_stopper_builtin).  The policy and its clones
 * hold a reference.  The canonical spec does not name the stopper. */
ES_API int es_policy_new_stopper(const char *spec, const es_stopper *m, es_policy **out, es_error *err);
/* The stopper a policy was made with (NULL: none given). */
ES_API const es_stopper *es_policy_stopper(const es_policy *p);

/* ----------------------------------------------------------------- session */

/* What a policy did on one question. */
typedef struct es_outcome {
    int32_t answer;          /* final answer id */
    uint8_t correct;         /* set by callers that know the gold answer */
    uint32_t samples;        /* samples drawn */
    uint32_t rounds;         /* sequential steps (a batch drawn at once is one) */
    uint32_t probes;         /* probes made */
    uint64_t tokens;         /* generated tokens up to each sample's end */
    uint64_t probe_tokens;   /* tokens the probes themselves spent */
    uint64_t kv_peak;        /* tokens held at once at peak: the largest round's
                                samples together (samples drawn `batch` at a time,
                                es_session_set_batch; one at a time: the longest) */
} es_outcome;

/*
 * es_session: the event protocol around a policy, one copy for every
 * driver: the replay of recorded traces, the built-in model's live loop and
 * the serving proxy.  It decides which probes are made, reads them (with the
 * policy's lag), what a stopped sample answers and where it ends, forces the
 * answer of a sample cut at the token limit, and counts what the question
 * cost.  It borrows the policy (which must outlive it) and allocates nothing
 * after es_session_new.
 *
 *   es_session_begin_item
 *   per sample:
 *     es_session_begin_sample
 *     at each probe point (every P tokens):
 *       es_session_reach(at)        -> ES_STOP: end the sample here, make no probe
 *       make the probe, then es_session_probe(...)   -> ES_STOP: end it here
 *     (es_session_token per token, optional)
 *     es_session_end_sample(answer, tokens, confidence, complete)
 *                                   -> ES_STOP: draw no more samples
 *   es_session_end_item             -> the outcome (answer, samples, tokens, ...)
 * A sample without probes can be given in one call: es_session_sample.
 */
typedef struct es_session es_session;

ES_API int es_session_new(es_policy *p, es_session **out);
ES_API void es_session_free(es_session *s);
ES_API es_policy *es_session_policy(const es_session *s);
/* The policy's info as of the current question (refreshed at begin_item). */
ES_API const es_policy_info *es_session_info(const es_session *s);

/* max_samples: the most the caller will draw (0 = unknown); answer ids are
 * < max_answers, ES_NULL_ANSWER included. */
ES_API int es_session_begin_item(es_session *s, uint32_t max_samples, uint32_t max_answers);
ES_API void es_session_begin_sample(es_session *s);
/* The sample reached a probe point after `at` tokens.  ES_CONTINUE: make
 * the probe; ES_SKIP: make none here and go on (the rule reads every m-th
 * point); ES_STOP: make none, and the sample stops here if a lagged probe
 * read now stopped it (else: no within rule, or past the token limit). */
ES_API int es_session_reach(es_session *s, uint32_t at);
/* A probe was made at `at` (its answer id, confidences, text cues as in
 * es_policy_probe, and the tokens it cost).  ES_STOP: the sample ends at `at`. */
ES_API int es_session_probe(es_session *s, uint32_t at, int32_t answer, float confidence, float window_confidence,
                     uint32_t cues, uint32_t cost);
ES_API int es_session_token(es_session *s, float logprob, float token_confidence);
/* The sample ended: its own answer and tokens, and complete = 1 when it
 * ended by itself (0: the caller cut it at the token limit).  The session
 * replaces them with the stopped or forced ones.  ES_STOP: no more samples. */
ES_API int es_session_end_sample(es_session *s, int32_t answer, uint32_t tokens, float confidence, int complete);
/* begin_sample + end_sample(complete) for a sample without probes. */
ES_API int es_session_sample(es_session *s, int32_t answer, uint32_t tokens, float confidence);
/* A batch of finished samples without probes (a policy with no within
 * rule; ES_EINVAL otherwise): sample k = idx ? idx[i] : i for i < n, with
 * answer[k], tokens[k], confidence[k] (confidence may be NULL), fed in order
 * until the policy stops; *used says how many were fed.  One call per round
 * of samples: what an engine drawing in rounds, and the replay, use. */
ES_API int es_session_samples(es_session *s, const uint32_t *idx, uint32_t n, const int32_t *answer,
                              const uint32_t *tokens, const float *confidence, uint32_t *used);
/* Samples drawn `batch` at a time (a server's rounds): the policy's verdict
 * counts only at round ends (or the cap), and kv_peak adds up each round.
 * 0 or 1: one at a time.  Takes effect at the next begin_item. */
ES_API void es_session_set_batch(es_session *s, uint32_t batch);
/* The question's outcome so far (samples, tokens, probes finished). */
ES_API const es_outcome *es_session_outcome(const es_session *s);
/* The last finished sample's answer and tokens as the session settled them. */
ES_API void es_session_last_sample(const es_session *s, int32_t *answer, uint32_t *tokens);
/* The question's outcome (valid until the next begin_item). */
ES_API const es_outcome *es_session_end_item(es_session *s);
/* es_policy_set_answer_flags for the session's policy: after begin_item. */
ES_API void es_session_set_answer_flags(es_session *s, const uint8_t *flags);

/* -------------------------------------------------------------- controller */

/*
 * es_controller: the online feedback loop (docs/controller.md).  It moves one
 * parameter of a policy (the across rule's swept one, es_policy_sweep_param)
 * over an ordered list of candidate values, conservative first, so that the
 * traffic it sees holds the operator's target:
 *   ES_TARGET_TOKENS   mean tokens per request (probes and audits included) <= budget;
 *   ES_TARGET_KV       mean peak KV-cache bytes per request (samples drawn in
 *                      rounds of `batch`, kv_bytes_per_position each) <= budget;
 *   ES_TARGET_EM_LOSS  the rate at which the answer differs from the full
 *                      run's <= budget (a fraction: 0.01 = 1 point), measured
 *                      without labels by audits: a random fraction of requests
 *                      runs on to the full run (a shadow continuation whose
 *                      tokens count as cost); late gold labels sharpen it.
 *
 * Per request the driver asks for a ticket (es_controller_begin: the value to
 * use and whether to audit), runs the request with the ticket applied to its
 * own policy (es_controller_apply), and reports the samples it drew
 * (es_controller_observe).  From the samples the controller replays every
 * candidate: a stopped request shows what every more aggressive candidate
 * would have done, an audited one shows all of them and the full run.
 *
 * Threads: one mutex inside the controller guards its state; every function
 * taking an es_controller may be called from any thread at any time, except
 * es_controller_free.  es_controller_apply and es_controller_would_stop only
 * read the ticket and the caller's own policy.  The controller starts no
 * thread.  It allocates only in es_controller_new (and when a request has
 * more answers than any before, in its private policy's begin_item).
 */
typedef struct es_controller es_controller;

typedef enum es_target_kind {
    ES_TARGET_TOKENS = 0,
    ES_TARGET_KV = 1,
    ES_TARGET_EM_LOSS = 2
} es_target_kind;

typedef struct es_controller_opts {
    es_target_kind target;
    double budget;                 /* tokens, bytes, or a fraction (em-loss) */
    double kv_bytes_per_position;  /* ES_TARGET_KV: bytes one position of one sample holds */
    uint32_t batch;                /* samples drawn at once per round, as the driver's
                                      es_session_set_batch (0 or 1: one at a time) */
    uint32_t window;               /* W: requests over which the target must hold (200) */
    const char *param;             /* the parameter moved; NULL: es_policy_sweep_param's */
    const double *candidates;      /* its values (any order: sorted conservative first);
                                      NULL: a default grid over its range */
    uint32_t n_candidates;
    double audit_share;            /* share of tokens spent on audits once settled
                                      (0.03 for em-loss, 0.01 otherwise; <= 0.05) */
    double audit_min, audit_max;   /* bounds on the audit probability (0.001, 0.5) */
    double confidence;             /* of the fallback's lower bound and the cost margin (0.99) */
    double margin;                 /* em-loss: aim at budget * (1 - margin) (0.2) */
    uint64_t seed;                 /* audits and roundings are a pure function of (seed, request) */
} es_controller_opts;

/* Defaults as above for target `kind` and `budget`. */
ES_API void es_controller_opts_init(es_controller_opts *o, es_target_kind kind, double budget);

/* A controller for policy p (only read: its rules, the parameter's range and
 * direction).  ES_ENOTSUP when the policy has no parameter a replay can
 * sweep (esc, deepconf); ES_EINVAL for a bad target or candidate. */
ES_API int es_controller_new(const es_policy *p, const es_controller_opts *o, es_controller **out, es_error *err);
ES_API void es_controller_free(es_controller *c);

/* What one request runs with. */
typedef struct es_controller_ticket {
    uint64_t request;          /* the caller's id (any 64-bit number, unique per request) */
    uint32_t candidate;        /* index into the candidates, 0 = the most conservative */
    double value;              /* the parameter's value */
    int audit;                 /* run on to the full run (es_controller_apply turns
                                  observe mode on) */
    double audit_prob;         /* the audit probability it was drawn with */
} es_controller_ticket;

/* The ticket for `request`, decided before it runs: the controller sits
 * between two candidates and draws one (so that a mean between them can be
 * held), and audits with the current probability. */
ES_API int es_controller_begin(es_controller *c, uint64_t request, es_controller_ticket *t);
/* Whether es_controller_begin would audit `request` now (0 or 1). */
ES_API int es_controller_should_audit(es_controller *c, uint64_t request);
/* The value of the candidate nearest the controller's position, and the
 * position itself (0 .. n_candidates - 1, fractional between two). */
ES_API double es_controller_param(es_controller *c);
ES_API double es_controller_position(es_controller *c);
ES_API uint32_t es_controller_n_candidates(const es_controller *c);
ES_API double es_controller_candidate(const es_controller *c, uint32_t i);
/* The parameter moved, "rule.key". */
ES_API const char *es_controller_param_name(const es_controller *c);

/* Set the ticket's value on the caller's policy (between questions) and
 * observe mode for an audit: the session then stops only at the policy's
 * cap (or clinch), and es_controller_would_stop says where the served answer
 * is. */
ES_API int es_controller_apply(const es_controller *c, const es_controller_ticket *t, es_policy *p, es_error *err);
/* During an audited request, after a sample (at a round's end with
 * batches): 1 when the ticket's candidate stops here (the served answer is
 * es_policy_answer now), else 0. */
ES_API int es_controller_would_stop(const es_controller *c, const es_controller_ticket *t, const es_policy *p);

/* What a request drew, in order, as the session settled each sample
 * (es_session_last_sample after each end_sample). */
typedef struct es_controller_request {
    const es_controller_ticket *ticket;
    uint32_t n;                    /* samples drawn (an audit: on to the policy's end) */
    const int32_t *answer;         /* [n] */
    const uint32_t *tokens;        /* [n] */
    const uint32_t *probe_tokens;  /* [n] tokens its probes cost, or NULL */
    const float *confidence;       /* [n] or NULL */
    uint32_t max_samples;          /* as given to es_session_begin_item */
    uint32_t max_answers;
} es_controller_request;

/* The request as served, and its audit. */
typedef struct es_controller_result {
    int32_t answer;            /* the served answer (the ticket's candidate's) */
    uint32_t samples;          /* samples up to the served stop */
    uint64_t tokens;           /* tokens up to it, probes included */
    uint64_t kv_peak;          /* peak positions held (rounds of `batch`) up to it */
    uint64_t audit_tokens;     /* tokens of the shadow continuation (0 without audit) */
    uint64_t audit_kv_peak;    /* peak positions of the whole audited run (0 without) */
    int32_t full_answer;       /* an audit: the full run's answer; else -1 */
} es_controller_result;

/* After each request: learn from it and move.  ES_EINVAL when the samples
 * contradict the ticket (they stop before its candidate would, or a
 * non-audited request ran on past it). */
ES_API int es_controller_observe(es_controller *c, const es_controller_request *r, es_controller_result *out,
                                 es_error *err);
/* The same from an outcome alone, for drivers that keep no samples: costs
 * at the ticket's candidate only, and for an audit the full run's answer
 * and the shadow tokens.  Learns less (no other candidate). */
ES_API int es_controller_observe_outcome(es_controller *c, const es_controller_ticket *t, const es_outcome *o,
                                         int32_t full_answer, uint64_t audit_tokens);
/* A gold label that arrived late: correct[a] says whether answer id a of
 * that request is right (a < n_answers).  Used for audited requests among
 * the last 1024 audits: their loss becomes "wrong where the full run was
 * right" instead of "differs".  ES_ERANGE when the request is not held. */
ES_API int es_controller_label(es_controller *c, uint64_t request, const uint8_t *correct, uint32_t n_answers);

/* Every candidate's outcome on a request's samples, without learning (a
 * simulator's static rows, tests).  out[i] for candidate i; known = 0 where
 * the samples end before that candidate would stop. */
typedef struct es_controller_cand {
    int known;
    int32_t answer;
    uint32_t samples;
    uint64_t tokens;           /* probes included */
    uint64_t kv_peak;          /* positions */
} es_controller_cand;
ES_API int es_controller_outcomes(es_controller *c, const es_controller_request *r, es_controller_cand *out,
                                  int32_t *full_answer);

typedef struct es_controller_status {
    double position, value;
    uint32_t candidate;        /* nearest */
    double audit_prob;
    double estimate;           /* the target's measure estimated at the position */
    double aim;                /* what the law aims at: budget less its margin and audits */
    uint64_t requests, audits, shifts, fallbacks;
    double audit_token_share;  /* recent, exponentially weighted */
    int infeasible;            /* even the most aggressive candidate misses a cost
                                  target, or the most conservative an em-loss one */
} es_controller_status;
ES_API void es_controller_get_status(es_controller *c, es_controller_status *out);

/* State as named arrays of numbers, for saving (the io layer writes JSON:
 * es_controller_save).  export calls put for every field under the lock;
 * import sets one (the "candidates" field must equal the controller's). */
ES_API int es_controller_export(es_controller *c, int (*put)(void *ctx, const char *name, const double *v, uint32_t n),
                                void *ctx);
ES_API int es_controller_import(es_controller *c, const char *name, const double *v, uint32_t n, es_error *err);

/* Clopper-Pearson interval of k successes in n at two-sided level `level`
 * (0.95): [*lo, *hi]; [0, 1] when n = 0.  Fractional counts are the Beta
 * quantiles at those counts. */
ES_API void es_binomial_interval(double k, double n, double level, double *lo, double *hi);
/* Regularised incomplete beta I_x(a, b), a, b > 0, x in [0, 1]. */
ES_API double es_incbeta(double a, double b, double x);

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_H */
