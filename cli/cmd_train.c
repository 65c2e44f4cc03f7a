/* cmd_train.c - `earlystop train`: train the built-in reasoning model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "earlystop_io.h"
#include "earlystop_lm.h"
#include "lm_cli.h"
#include "clock.h"

#define TRAIN_SALT 0x545241494e494e47ULL

typedef struct train_opts {
    const char *out, *init;
    es_task_kind mix[8];   /* tasks drawn in turn; repeats weight a task */
    int n_mix;
    double probe_rows;
    long steps, batch, seed, log_every, warmup, level;
    int threads;
    double lr, min_lr_frac, wd;
    es_lm_config cfg;
    int json;
} train_opts;

/* Every option with its default, so a run can be reproduced from --help. */
static void train_help(void)
{
    printf("usage: earlystop train [--out FILE] [--steps N] [--batch B] [--lr X] [--seed S]\n"
           "                       [--init FILE] [--tasks LIST] [--task-level L] [--probe-rows F]\n"
           "                       [--dim D] [--layers L] [--heads H] [--hidden F] [--seq T]\n"
           "                       [--threads N] [--log-every N] [--json]\n\n"
           "Train the built-in reasoning model on a mix of the generated tasks\n"
           "(last_letters, date, arithmetic) and write the model file.  The shipped\n"
           "data/model.bin comes from four runs, see docs/model.md.  Training stops with\n"
           "an error (exit 1, nothing written) if the loss or the gradients become NaN or\n"
           "infinite; --out is checked for writability before the first step.\n\n"
           "  --out FILE      model file to write (default model.bin; the shipped model\n"
           "                  data/model.bin is never overwritten unless named); checked\n"
           "                  before training, replaced at each checkpoint and at the end\n"
           "  --steps N       optimizer steps (default 3000)\n"
           "  --batch B       examples per step (default 16)\n"
           "  --lr X          peak learning rate (default 2e-3; warmup, then cosine to 10%%)\n"
           "  --warmup N      warmup steps (default 100)\n"
           "  --wd X          AdamW weight decay (default 0.01)\n"
           "  --seed S        seed of the initial weights and the data stream (default 1)\n"
           "  --init FILE     start from this model's weights (its shape wins over --dim etc.)\n"
           "  --task-level L  task difficulty: 1 = the evaluated one (default), 0 = larger\n"
           "                  numbers (the first stage of the shipped model's curriculum)\n"
           "  --tasks LIST    comma-separated tasks drawn in turn, repeats weight (default all)\n"
           "  --probe-rows F  fraction of rows that teach the probe: a chain cut at a random\n"
           "                  point, then the answer cue and the answer held there (default 0)\n"
           "  --dim/--layers/--heads/--hidden/--seq   model shape (default 128/4/4/384/256)\n"
           "  --threads N     " LM_THREADS_HELP ";\n"
           "                  the result does not depend on it\n"
           "  --log-every N   loss line every N steps (default 50)\n"
           "  --json          final summary as JSON on stdout\n");
}

/* "date,arithmetic,arithmetic" -> the mix, drawn in turn (a task named
 * twice gets twice the rows). */
static int parse_mix(const char *v, train_opts *o)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", v);
    o->n_mix = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        es_task_kind k;
        if (es_task_parse(tok, &k) || o->n_mix >= 8) return -1;
        o->mix[o->n_mix++] = k;
    }
    return o->n_mix ? 0 : -1;
}

/* Table-free parsing: each option maps to the field it sets; shape
 * options are checked by es_lm_config_check so the message names the limit. */
static int train_parse(int argc, char **argv, train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->out = "model.bin"; /* never clobber the shipped model by default */
    o->steps = 3000; o->batch = 16; o->seed = 1; o->log_every = 50; o->warmup = 100;
    o->level = ES_TASK_LEVEL;
    for (int k = 0; k < ES_TASK_COUNT; k++) o->mix[k] = (es_task_kind)k;
    o->n_mix = ES_TASK_COUNT;
    o->lr = 2e-3; o->min_lr_frac = 0.1; o->wd = 0.01;
    es_lm_config_default(&o->cfg);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        int32_t *shape = !strcmp(a, "--dim") ? &o->cfg.dim : !strcmp(a, "--layers") ? &o->cfg.n_layers
                       : !strcmp(a, "--heads") ? &o->cfg.n_heads : !strcmp(a, "--hidden") ? &o->cfg.hidden_dim
                       : !strcmp(a, "--seq") ? &o->cfg.seq_len : NULL;
        long *lv = !strcmp(a, "--steps") ? &o->steps : !strcmp(a, "--batch") ? &o->batch
                 : !strcmp(a, "--seed") ? &o->seed : !strcmp(a, "--log-every") ? &o->log_every
                 : !strcmp(a, "--warmup") ? &o->warmup : !strcmp(a, "--task-level") ? &o->level : NULL;
        double *dv = !strcmp(a, "--lr") ? &o->lr : !strcmp(a, "--wd") ? &o->wd : NULL;
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if (!v && (shape || lv || dv || !strcmp(a, "--out") || !strcmp(a, "--init") ||
                   !strcmp(a, "--probe-rows") || !strcmp(a, "--threads") || !strcmp(a, "--tasks")))
            return cli_usage_error("train", "%s needs a value", a);
        if (!strcmp(a, "--out")) { o->out = v; i++; }
        else if (!strcmp(a, "--threads")) {
            if (cli_parse_threads("train", v, &o->threads)) return CLI_USAGE;
            i++;
        }
        else if (!strcmp(a, "--init")) { o->init = v; i++; }
        else if (!strcmp(a, "--tasks")) {
            if (parse_mix(v, o)) return cli_usage_error("train", "bad --tasks '%s' (last_letters, date, arithmetic)", v);
            i++;
        }
        else if (!strcmp(a, "--probe-rows")) {
            if (cli_parse_double(v, &o->probe_rows) || o->probe_rows < 0 || o->probe_rows > 1)
                return cli_usage_error("train", "bad --probe-rows '%s'", v);
            i++;
        }
        else if (shape || lv) {
            if (cli_parse_long(v, 0, 1L << 40, &n)) return cli_usage_error("train", "bad %s '%s'", a, v);
            if (shape) *shape = (int32_t)(n > 100000 ? 100000 : n); else *lv = n;
            i++;
        } else if (dv) {
            if (cli_parse_double(v, dv) || *dv < 0) return cli_usage_error("train", "bad %s '%s'", a, v);
            i++;
        } else return cli_usage_error("train", "unknown option '%s'", a);
    }
    if (o->level > 1) return cli_usage_error("train", "--task-level is 0 or 1");
    if (o->steps < 1 || o->batch < 1 || o->log_every < 1)
        return cli_usage_error("train", "--steps, --batch and --log-every must be positive");
    es_error err;
    if (es_lm_config_check(&o->cfg, &err)) return cli_usage_error("train", "%s", err.msg);
    return 0;
}

/* A probe row: the chain cut at a random point, then (on a new line) the
 * answer cue and the answer the chain holds there: the last answer it stated,
 * or the gold when it has stated none yet.  Loss only on that answer, so the
 * model learns what a probe asks without learning to write probes itself.
 * Returns where the scored part starts. */
static size_t make_probe_row(es_rng *r, es_task_example *ex)
{
    size_t len = strlen(ex->completion), cut = 1 + es_rng_below(r, (uint32_t)len);
    char held[32];
    ex->completion[cut] = '\0';
    if (!es_task_extract_answer(ex->completion, held, sizeof held))
        snprintf(held, sizeof held, "%s", ex->gold);
    size_t at = cut;
    if (ex->completion[cut - 1] != '\n') ex->completion[at++] = '\n';
    at += (size_t)snprintf(ex->completion + at, sizeof ex->completion - at, "%s", ES_LM_ANSWER_CUE);
    size_t scored = at;
    snprintf(ex->completion + at, sizeof ex->completion - at, "%s.", held);
    return scored;
}

/* Batch rows: BOS prompt completion EOS, one example per row, loss on the
 * completion only (the question is random and not the model's to write).
 * Returns the longest row, the columns this step trains on. */
static int fill_batch(es_rng *r, long *counter, int B, int T, int *inp, int *tgt, long *ntok,
                      const train_opts *o)
{
    int toks[2 * ES_TASK_TEXT_CAP + 2], longest = 1;
    for (int b = 0; b < B; b++) {
        es_task_example ex;
        es_task_kind k = o->mix[*counter % o->n_mix];
        (*counter)++;
        if (es_task_draw_level(k, (int)o->level, r, &ex)) { b--; continue; }
        /* only draw for probe rows when asked: the plain stream stays as it was */
        size_t scored = 0;
        if (o->probe_rows > 0 && es_rng_float(r) < o->probe_rows) scored = make_probe_row(r, &ex);
        toks[0] = ES_LM_BOS;
        int np = es_lm_encode(ex.prompt, toks + 1, ES_TASK_TEXT_CAP);
        int nc = es_lm_encode(ex.completion, toks + 1 + np, ES_TASK_TEXT_CAP);
        if (np < 0 || nc < 0) { b--; continue; }
        int n = 1 + np + nc, first = np + (int)scored;   /* first scored target index */
        if (!scored) toks[n++] = ES_LM_EOS;
        if (n - 1 > T) n = T + 1;
        for (int i = 0; i < T; i++) {
            inp[b * T + i] = i < n - 1 ? toks[i] : ES_LM_EOS;
            tgt[b * T + i] = (i < n - 1 && i + 1 > first) ? toks[i + 1] : -1;
        }
        if (n - 1 > longest) longest = n - 1;
        *ntok += n - 1;
    }
    return longest;
}

/* Linear warmup, then cosine to min_lr_frac of the peak: the schedule the
 * stages in docs/model.md use. */
static float lr_at(const train_opts *o, long step)
{
    if (step < o->warmup) return (float)(o->lr * (double)(step + 1) / (double)o->warmup);
    double p = (double)(step - o->warmup) / (double)(o->steps - o->warmup > 0 ? o->steps - o->warmup : 1);
    double c = 0.5 * (1.0 + cos(3.14159265358979 * (p > 1 ? 1 : p)));
    return (float)(o->lr * (o->min_lr_frac + (1.0 - o->min_lr_frac) * c));
}

/* The model goes to the output's temporary file, then replaces the old one:
 * a checkpoint (final = 0) publishes it and continues on a fresh temporary,
 * the final save commits.  Errors name --out, not the temporary. */
static int save_model(const es_lm *m, es_outfile **of, int final, es_error *err)
{
    char name[256];
    snprintf(name, sizeof name, "%s", es_outfile_name(*of));
    int rc = es_lm_save(m, es_outfile_write_path(*of), err);
    if (!rc && !final) rc = es_outfile_checkpoint(*of, err);
    if (!rc && final) {
        rc = es_outfile_commit(*of, err);
        *of = NULL; /* commit frees it, success or not */
    }
    if (rc && err) snprintf(err->file, sizeof err->file, "%s", name);
    return rc;
}

/* Draw a batch, forward, backward, AdamW; a checkpoint every 500 steps so
 * an interrupted run leaves a usable model.  A non-finite loss or gradient
 * stops the run before anything more is written. */
static int train_loop(const train_opts *o, es_lm *m, es_lm_trainer *t, int *inp, int *tgt, es_outfile **of)
{
    es_rng r;
    es_rng_stream(&r, (uint64_t)o->seed ^ TRAIN_SALT, 0, 0);
    es_lm_adamw opt = {0, 0.9f, 0.95f, 1e-8f, (float)o->wd, 1.0f};
    int T = o->cfg.seq_len, B = (int)o->batch;
    long counter = 0, ntok = 0;
    double t0 = es_wall_seconds(), ema = 0;
    es_error err;
    for (long s = 0; s < o->steps; s++) {
        int seq = fill_batch(&r, &counter, B, T, inp, tgt, &ntok, o);
        /* rows were written with stride T; the trainer reads stride T too */
        opt.lr = lr_at(o, s);
        float loss = 0, gn = 0;
        if (es_lm_train_step(t, inp, tgt, seq, &opt, (int)s + 1, &loss, &gn, &err)) {
            fprintf(stderr, "earlystop train: %s; %s not written\n", err.msg, o->out);
            return CLI_FAIL;
        }
        ema = s ? 0.95 * ema + 0.05 * loss : loss;
        if ((s + 1) % o->log_every == 0 || s + 1 == o->steps) {
            double el = es_wall_seconds() - t0;
            fprintf(stderr, "step %ld/%ld loss %.4f (avg %.4f) gnorm %.3f lr %.2e | %.0f tok/s, %.0fs\n",
                    s + 1, o->steps, loss, ema, gn, opt.lr, ntok / el, el);
        }
        if ((s + 1) % 500 == 0 && save_model(m, of, 0, &err)) return cli_report(&err, err.code);
    }
    double el = es_wall_seconds() - t0;
    if (save_model(m, of, 1, &err)) return cli_report(&err, err.code);
    if (o->json)
        printf("{\"out\":\"%s\",\"steps\":%ld,\"batch\":%ld,\"seed\":%ld,\"params\":%zu,"
               "\"final_loss_avg\":%.5f,\"tokens\":%ld,\"seconds\":%.1f,\"tokens_per_s\":%.1f}\n",
               o->out, o->steps, o->batch, o->seed, es_lm_n_params(m), ema, ntok, el, ntok / el);
    else
        printf("trained %zu parameters, %ld steps x %ld examples, %ld tokens in %.1f s "
               "(%.0f tok/s), loss %.4f -> %s\n", es_lm_n_params(m), o->steps, o->batch, ntok,
               el, ntok / el, ema, o->out);
    return CLI_OK;
}

/* Fresh weights from --seed, or --init to continue a stage. */
int cmd_train(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) { train_help(); return CLI_OK; }
    train_opts o;
    int rc = train_parse(argc, argv, &o);
    if (rc) return rc;
    es_error err;
    es_lm *m = NULL;
    es_lm_trainer *t = NULL;
    es_lm_pool *pool = NULL;
    /* the output is checked (and refused if it is --init) before any work */
    es_outfile *of = NULL;
    const char *inputs[] = {o.init, NULL};
    if ((rc = es_outfile_open(o.out, inputs, &of, &err))) {
        snprintf(err.field, sizeof err.field, "--out");
        return cli_report(&err, rc);
    }
    rc = o.init ? es_lm_load(o.init, &m, &err) : es_lm_new(&o.cfg, (uint64_t)o.seed, &m, &err);
    if (rc) {
        es_outfile_abort(of);
        return cli_report(&err, rc);
    }
    if ((rc = lm_pool_open("train", o.threads, &pool)) != 0) {
        es_outfile_abort(of);
        es_lm_free(m);
        return rc;
    }
    o.cfg = *es_lm_get_config(m);
    size_t cells = (size_t)o.batch * (size_t)o.cfg.seq_len;
    int *inp = malloc(cells * sizeof(int)), *tgt = malloc(cells * sizeof(int));
    if (!inp || !tgt || es_lm_trainer_new(m, (int)o.batch, o.cfg.seq_len, &t)) {
        fprintf(stderr, "earlystop train: out of memory\n");
        rc = CLI_FAIL;
    } else {
        es_lm_trainer_set_pool(t, pool);
        fprintf(stderr, "earlystop train: %zu parameters (dim %d, hidden %d, %d layers, %d heads, "
                "seq %d), batch %ld, %ld steps, seed %ld\n", es_lm_n_params(m), o.cfg.dim,
                o.cfg.hidden_dim, o.cfg.n_layers, o.cfg.n_heads, o.cfg.seq_len, o.batch, o.steps, o.seed);
        rc = train_loop(&o, m, t, inp, tgt, &of);
    }
    es_outfile_abort(of);
    free(inp);
    free(tgt);
    es_lm_trainer_free(t);
    es_lm_free(m);
    es_lm_pool_free(pool);
    return rc;
}
