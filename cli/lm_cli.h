/* lm_cli.h - pieces shared by the model commands (train, generate, run). */
#ifndef ES_LM_CLI_H
#define ES_LM_CLI_H

#include <stdio.h>
#include "earlystop.h"
#include "earlystop_replay.h"
#include "earlystop_lm.h"
#include "cli.h"
#include "clock.h"

/* Options generate and run share: which questions, and how they are sampled. */
typedef struct lm_gen_opts {
    const char *model;
    es_task_kind task;
    int have_task;
    long items, samples, probe_every, seed, start;
    int probe_lines;       /* --probe-every lines: a free text probe at each line end */
    int probe_given;       /* --probe-every was given (run: else the policy's kind) */
    int threads;
    double temperature;
} lm_gen_opts;

/* Defaults of the shared options; `items` differs per command. */
void lm_gen_opts_init(lm_gen_opts *g, long items);
/* The shared options' --help lines, with the defaults in `def`. */
void lm_gen_opts_help(FILE *fp, const lm_gen_opts *def);

/* If argv[*i] is a shared option, consume it and its value and return 1;
 * 0 when it is not one; -1 after printing the usage error of a bad value. */
int lm_gen_opt(const char *cmd, int argc, char **argv, int *i, lm_gen_opts *g);

/* Whether a live run asks for text probes at line ends: --probe-every
 * lines, or, when --probe-every was not given, a policy whose within rule
 * reads text cues (es_lm_live_new adds one that needs them). */
int lm_probe_lines(int lines, int given, const es_policy_info *info);

/* After parsing: a task was given and the counts are positive (else -1). */
int lm_gen_opts_check(const char *cmd, const lm_gen_opts *g);

/* Per-task figures of generated samples (EM, maj@k, tokens, stable-final). */
typedef struct lm_summary {
    size_t items, samples, first_correct, sample_correct, maj_correct;
    double tokens, probe_tokens, probed_tokens, stable_tokens;
    size_t probed_samples;
} lm_summary;

void lm_summary_init(lm_summary *s);
/* Add one item's samples (in drawing order). */
int lm_summary_add(lm_summary *s, es_task_kind task, const char *gold, const es_sample *samples, size_t k,
                   es_error *err);
void lm_summary_print(const lm_summary *s, es_task_kind task, long k, double seconds,
                      int json, FILE *fp);

/* The model file to load: the --model value if given, else $ES_MODEL, else
 * data/model.bin in the working directory, else data/model.bin beside the
 * binary's parent directory (build/earlystop -> data/model.bin). */
const char *lm_model_path(const char *given, char *buf, size_t cap);

/* --threads of every model command goes through cli_parse_threads. */
#define LM_THREADS_HELP "threads, 0 = one per core (default); more are capped at the cores"
/* The pool of the model's kernels; NULL for one thread.  Prints the error. */
int lm_pool_open(const char *cmd, int threads, es_lm_pool **out);


#endif
