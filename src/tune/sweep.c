/*
 * sweep.c - what a policy does on a set of items, over all orders, and the
 * exact sweep of one parameter.
 *
 * For a rule whose decision compares a statistic with a parameter t (AC's
 * P(p1 > p2) >= threshold, the margin >= m, ...), an item's stop point is a
 * step function of t: with the rule in observe mode (es_policy_observe) one
 * replay to the end of each order gives, after every sample, the set of t
 * at which it would have stopped there (es_policy_boundary).  The stop
 * point for t is the first sample whose set holds t, so only the samples
 * where that set grows past every earlier one (records) can ever be stop
 * points: each is an event (value, item and order, outcome there).  Sorted
 * from conservative to aggressive and applied in turn, the events give the
 * figures at every threshold there is, with no grid: one replay per order
 * instead of one per grid point.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tune_int.h"

enum { CHUNK_ITEMS = 16 };

/* ------------------------------------------------------------------ losses */

int tn_loss(es_tune_loss loss, const tn_out *o, const tn_out *full)
{
    switch (loss) {
    case ES_LOSS_WRONG: return !o->correct && full->correct;
    case ES_LOSS_DISAGREE: return o->answer != full->answer;
    case ES_LOSS_NET: return (int)(!o->correct && full->correct) - (int)(o->correct && !full->correct);
    }
    return 0;
}

static double cost_of(const tn_set *s, const tn_out *o)
{
    return s->o->objective == ES_OBJECTIVE_KV ? (double)o->kv : (double)o->tokens;
}

/* ------------------------------------------------------------- replaying */

/* Thread-local tools: a policy, a session, an order buffer. */
typedef struct tn_worker {
    es_policy *p;
    es_session *ses;
    uint32_t *order;
    uint32_t order_cap;
    int dir, mixed;        /* the boundaries' direction seen by this thread */
} tn_worker;

static void worker_free(tn_worker *w)
{
    es_session_free(w->ses);
    es_policy_free(w->p);
    free(w->order);
    memset(w, 0, sizeof *w);
}

static int worker_init(tn_worker *w, const es_policy *proto, const tn_set *s, int observe, es_error *err)
{
    memset(w, 0, sizeof *w);
    int rc = es_policy_clone(proto, &w->p, err);
    if (!rc && observe && es_policy_observe(w->p, 1))
        rc = es_error_set(err, ES_ENOTSUP, "", 0, "", "%s cannot be swept", es_policy_spec(proto));
    if (!rc && es_session_new(w->p, &w->ses)) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (!rc) es_session_set_batch(w->ses, s->o->objective == ES_OBJECTIVE_KV ? s->o->batch : 1);
    if (rc) worker_free(w);
    return rc;
}

/* Order r of item v (its index in its file: the orders `eval` replays). */
static int draw_order(tn_worker *w, const tn_set *s, const es_item_view *v, uint32_t index, uint32_t r)
{
    if (v->n_samples > w->order_cap) {
        uint32_t *o = realloc(w->order, v->n_samples * sizeof *o);
        if (!o) return ES_ENOMEM;
        w->order = o;
        w->order_cap = v->n_samples;
    }
    if (s->o->shuffles) es_shuffle_order(s->o->seed, r, index, v->n_samples, w->order);
    else
        for (uint32_t i = 0; i < v->n_samples; i++) w->order[i] = i;
    return ES_OK;
}

static void to_out(const es_outcome *o, const es_item_view *v, int32_t answer, tn_out *out)
{
    out->tokens = o->tokens + o->probe_tokens;
    out->kv = o->kv_peak;
    out->answer = answer;
    out->correct = answer >= 0 && (uint32_t)answer < v->n_answers && v->correct[answer];
}

/* ------------------------------------------------------------- baseline */

typedef struct base_job {
    tn_set *s;
    tn_worker *w;          /* [threads] */
} base_job;

static int base_chunk(void *ctx, int thread, size_t chunk)
{
    base_job *j = ctx;
    tn_set *s = j->s;
    tn_worker *w = &j->w[thread];
    for (size_t k = chunk * CHUNK_ITEMS; k < s->n && k < (chunk + 1) * CHUNK_ITEMS; k++) {
        es_item_view v;
        tn_view(s->d, s->items[k], &v);
        double cost = 0, tokens = 0;
        for (uint32_t r = 0; r < s->R; r++) {
            es_outcome o;
            if (draw_order(w, s, &v, s->d->items[s->items[k]].index, r)) return ES_ENOMEM;
            int rc = es_replay_item(w->ses, &v, w->order, s->o->probe_cost, &o);
            if (rc) return rc;
            tn_out *b = &s->base[k * s->R + r];
            to_out(&o, &v, o.answer, b);
            cost += cost_of(s, b);
            tokens += (double)b->tokens;
        }
        s->base_cost[k] = cost / s->R;
        s->base_tokens[k] = tokens / s->R;
    }
    return ES_OK;
}

int tn_set_init(tn_set *s, const es_tune_data *d, uint32_t *items, size_t n, const es_tune_opts *o, es_error *err)
{
    memset(s, 0, sizeof *s);
    s->d = d;
    s->items = items;
    s->n = n;
    s->o = o;
    s->R = o->shuffles ? o->shuffles : 1;
    s->base = calloc(n * s->R + 1, sizeof *s->base);
    s->base_cost = calloc(n + 1, sizeof *s->base_cost);
    s->base_tokens = calloc(n + 1, sizeof *s->base_tokens);
    if (!s->base || !s->base_cost || !s->base_tokens) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (o->per_file) {
        if (!(s->file_n = calloc(d->n_files + 1, sizeof *s->file_n)))
            return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
        for (size_t k = 0; k < n; k++) s->file_n[d->items[items[k]].file]++;
    }
    es_policy *full;
    int rc = es_policy_new("full", &full, err);
    if (rc) return rc;
    int threads = es_parallel_threads(o->threads);
    base_job j = {s, calloc((size_t)threads, sizeof(tn_worker))};
    for (int t = 0; j.w && t < threads && !rc; t++) rc = worker_init(&j.w[t], full, s, 0, err);
    if (!j.w) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (!rc) rc = es_parallel(threads, (n + CHUNK_ITEMS - 1) / CHUNK_ITEMS, base_chunk, &j);
    if (rc && err && !err->msg[0]) es_error_set(err, rc, "", 0, "", "full: %s", es_strerror(rc));
    for (int t = 0; j.w && t < threads; t++) worker_free(&j.w[t]);
    free(j.w);
    es_policy_free(full);
    uint64_t c = 0;
    for (size_t i = 0; i < n * s->R; i++) c += s->base[i].correct;
    s->em_full = n ? (double)c / (double)(n * s->R) : 0;
    return rc;
}

void tn_set_free(tn_set *s)
{
    free(s->base);
    free(s->base_cost);
    free(s->base_tokens);
    free(s->file_n);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------ the sweep */

typedef struct tn_event {
    double value;
    uint32_t io;
    tn_out out;
} tn_event;

typedef struct ev_vec {
    tn_event *e;
    size_t n, cap;
} ev_vec;

static int ev_push(ev_vec *v, double value, uint32_t io, const tn_out *o)
{
    if (v->n == v->cap) {
        size_t c = v->cap ? 2 * v->cap : 256;
        tn_event *e = realloc(v->e, c * sizeof *e);
        if (!e) return ES_ENOMEM;
        v->e = e;
        v->cap = c;
    }
    v->e[v->n++] = (tn_event){value, io, *o};
    return ES_OK;
}

typedef struct sweep_job {
    const tn_set *s;
    const tn_config *c;
    tn_worker *w;          /* [threads] */
    ev_vec *chunk_ev;      /* [chunks]: events in item order whatever the threads */
    tn_out *nostop;        /* [n * R]: the outcome when the rule never stops */
    int observe;           /* 0: a grid point, replayed plainly */
} sweep_job;

/* One order of one item in observe mode: the record events, then the
 * outcome at its end.  Decisions count at round ends only (objective kv). */
static int trajectory(const sweep_job *j, tn_worker *w, const es_item_view *v, uint32_t io, ev_vec *ev, tn_out *end)
{
    const tn_set *s = j->s;
    uint32_t batch = s->o->objective == ES_OBJECTIVE_KV && s->o->batch > 1 ? s->o->batch : 1;
    int rc = es_replay_begin_item(w->ses, v), have = 0, dir = 0;
    double rec = 0;
    for (uint32_t i = 0; !rc && i < v->n_samples; i++) {
        int verdict = es_replay_sample(w->ses, v, w->order[i], s->o->probe_cost);
        if (verdict < 0) return verdict;
        const es_outcome *now = es_session_outcome(w->ses);
        int last = verdict == ES_STOP || i + 1 == v->n_samples;
        if (now->samples % batch == 0 || last) {
            double b;
            int d = es_policy_boundary(w->p, &b);
            if (d != ES_BOUND_NEVER) {
                if ((dir && d != dir) || (w->dir && d != w->dir)) w->mixed = 1;
                dir = w->dir = d;
                if (!have || (d == ES_BOUND_UPPER ? b > rec : b < rec)) {
                    tn_out o;
                    to_out(now, v, es_policy_answer(w->p), &o);
                    if ((rc = ev_push(ev, b, io, &o))) return rc;
                    rec = b;
                    have = 1;
                }
            }
        }
        if (verdict == ES_STOP) break;
    }
    if (rc) return rc;
    const es_outcome *o = es_session_end_item(w->ses);
    to_out(o, v, o->answer, end);
    return ES_OK;
}

static int sweep_chunk(void *ctx, int thread, size_t chunk)
{
    sweep_job *j = ctx;
    const tn_set *s = j->s;
    tn_worker *w = &j->w[thread];
    for (size_t k = chunk * CHUNK_ITEMS; k < s->n && k < (chunk + 1) * CHUNK_ITEMS; k++) {
        es_item_view v;
        tn_view(s->d, s->items[k], &v);
        for (uint32_t r = 0; r < s->R; r++) {
            uint32_t io = (uint32_t)(k * s->R + r);
            if (draw_order(w, s, &v, s->d->items[s->items[k]].index, r)) return ES_ENOMEM;
            int rc;
            if (j->observe) {
                rc = trajectory(j, w, &v, io, &j->chunk_ev[chunk], &j->nostop[io]);
            } else {
                es_outcome o;
                rc = es_replay_item(w->ses, &v, w->order, s->o->probe_cost, &o);
                if (!rc) to_out(&o, &v, o.answer, &j->nostop[io]);
            }
            if (rc) return rc;
        }
    }
    return ES_OK;
}

/* What the sort moves: 16 bytes (the events themselves are 40). */
typedef struct tn_key {
    double value;
    uint32_t io, ev;
} tn_key;

/* An unsigned integer that orders like the double: conservative first,
 * i.e. descending values for an upper bound, ascending for a lower one. */
static uint64_t order_bits(double v, int dir)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    u = (u >> 63) ? ~u : u | 0x8000000000000000ULL; /* ascending as unsigned */
    return dir == ES_BOUND_UPPER ? ~u : u;
}

/* Stable LSD radix sort of the keys by value (16-bit digits): the events
 * arrive in (item, order) order, so ties stay in that order, as the
 * brute-force replay would meet them; linear time for the millions of
 * events of a pooled sweep. */
static int sort_keys(tn_key *key, size_t n, int dir)
{
    tn_key *tmp = malloc((n + 1) * sizeof *tmp);
    uint64_t *bits = malloc((n + 1) * sizeof *bits), *tbits = malloc((n + 1) * sizeof *tbits);
    size_t *count = malloc(65536 * sizeof *count);
    if (!tmp || !bits || !tbits || !count) {
        free(tmp);
        free(bits);
        free(tbits);
        free(count);
        return ES_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) bits[i] = order_bits(key[i].value, dir);
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof *count);
        for (size_t i = 0; i < n; i++) count[(bits[i] >> shift) & 0xFFFF]++;
        if (n == 0 || count[(bits[0] >> shift) & 0xFFFF] == n) continue; /* one digit for all: nothing moves */
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            size_t d = count[(bits[i] >> shift) & 0xFFFF]++;
            tmp[d] = key[i];
            tbits[d] = bits[i];
        }
        memcpy(key, tmp, n * sizeof *key);
        memcpy(bits, tbits, n * sizeof *bits);
    }
    free(tmp);
    free(bits);
    free(tbits);
    free(count);
    return ES_OK;
}

/* The walk's state: every (item, order)'s current outcome, the sums,
 * each item's loss count over its orders and (per_file) each file's. */
typedef struct walk {
    const tn_set *s;
    tn_out *cur;
    int32_t *loss;
    tn_sum sum;
    int64_t *file_loss;    /* per_file: [d->n_files]; else NULL */
} walk;

static void walk_add(walk *w, uint32_t io, const tn_out *o, int sign)
{
    const tn_set *s = w->s;
    uint32_t k = io / s->R;
    int l = tn_loss(s->o->loss, o, &s->base[io]);
    w->sum.correct += (uint64_t)(int64_t)sign * o->correct;
    w->sum.tokens += (uint64_t)((int64_t)sign * (int64_t)o->tokens);
    w->sum.kv += (uint64_t)((int64_t)sign * (int64_t)o->kv);
    w->sum.loss += sign * l;
    w->loss[k] += sign * l;
    if (w->file_loss) w->file_loss[s->d->items[s->items[k]].file] += sign * l;
    double ft = s->base_tokens[k], fc = s->base_cost[k];
    w->sum.share += sign * (ft > 0 ? (double)o->tokens / (ft * s->R) : 0.0);
    w->sum.cost += sign * (fc > 0 ? cost_of(s, o) / (fc * s->R) : 0.0);
}

static void walk_set(walk *w, uint32_t io, const tn_out *o)
{
    walk_add(w, io, &w->cur[io], -1);
    w->cur[io] = *o;
    walk_add(w, io, o, +1);
}

/* per_file: the worst file's mean loss into the sums, before they are
 * read (a candidate, a requested value).  Recomputed from the integer
 * per-file sums, so it does not depend on the order of events. */
static void walk_worst(walk *w)
{
    if (!w->file_loss) return;
    const tn_set *s = w->s;
    double worst = -INFINITY;
    for (size_t f = 0; f < s->d->n_files; f++)
        if (s->file_n[f]) {
            double m = (double)w->file_loss[f] / ((double)s->file_n[f] * s->R);
            if (m > worst) worst = m;
        }
    w->sum.worst = worst == -INFINITY ? 0 : worst;
}

/* Does value v lie beyond a (more aggressive), in this rule's direction? */
static int beyond(int dir, double v, double a) { return dir == ES_BOUND_LOWER ? v > a : v < a; }

static int push_cand(tn_cand **c, size_t *n, size_t *cap, double value, const tn_sum *sum)
{
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        tn_cand *p = realloc(*c, nc * sizeof *p);
        if (!p) return ES_ENOMEM;
        *c = p;
        *cap = nc;
    }
    (*c)[(*n)++] = (tn_cand){value, *sum};
    return ES_OK;
}

/* The requested values' indices in walk order (conservative first); a
 * stable insertion sort: there are few (the candidates of one front), and
 * qsort's comparator could not see the direction without global state. */
static void sort_at(const double *at, size_t *idx, size_t n, int dir)
{
    for (size_t i = 0; i < n; i++) {
        size_t x = i, j = i;
        while (j > 0 && (dir == ES_BOUND_LOWER ? at[idx[j - 1]] > at[x] : at[idx[j - 1]] < at[x])) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = x;
    }
}

/* Apply the sorted events, emitting a candidate after each run of equal
 * values and calling fn at each requested value on the way (idx: the
 * requested values sorted in walk order). */
static int walk_events(walk *w, const tn_event *ev, const tn_key *key, size_t n_ev, int dir, int grid,
                       const double *at, const size_t *idx, size_t n_at, tn_at_fn fn, void *ctx, tn_cand **cands,
                       size_t *n_cands)
{
    size_t cap = 0, a = 0;
    int rc = ES_OK;
    walk_worst(w);
    if (grid) rc = push_cand(cands, n_cands, &cap, NAN, &w->sum);
    for (size_t i = 0; i < n_ev && !rc;) {
        double v = key[i].value;
        /* a requested value more conservative than v sees the state before it */
        while (a < n_at && !rc && beyond(dir, v, at[idx[a]])) rc = fn(ctx, idx[a++], w->loss, &w->sum, w->cur);
        for (; i < n_ev && key[i].value == v; i++) walk_set(w, key[i].io, &ev[key[i].ev].out);
        walk_worst(w);
        if (!rc) rc = push_cand(cands, n_cands, &cap, v, &w->sum);
    }
    while (a < n_at && !rc) rc = fn(ctx, idx[a++], w->loss, &w->sum, w->cur);
    return rc;
}

int tn_sweep(const tn_set *s, const tn_config *c, tn_cand **cands, size_t *n_cands, const double *at, size_t n_at,
             tn_at_fn fn, void *ctx, es_error *err)
{
    *cands = NULL;
    *n_cands = 0;
    size_t n_io = s->n * s->R, chunks = (s->n + CHUNK_ITEMS - 1) / CHUNK_ITEMS;
    int threads = es_parallel_threads(s->o->threads), rc = ES_OK;
    sweep_job j = {.s = s, .c = c, .observe = c->sweep_key != NULL};
    j.w = calloc((size_t)threads, sizeof *j.w);
    j.chunk_ev = calloc(chunks + 1, sizeof *j.chunk_ev);
    j.nostop = calloc(n_io + 1, sizeof *j.nostop);
    walk w = {s, calloc(n_io + 1, sizeof *w.cur), calloc(s->n + 1, sizeof *w.loss), {0},
              s->file_n ? calloc(s->d->n_files + 1, sizeof *w.file_loss) : NULL};
    if (!j.w || !j.chunk_ev || !j.nostop || !w.cur || !w.loss || (s->file_n && !w.file_loss))
        rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    for (int t = 0; !rc && t < threads; t++) rc = worker_init(&j.w[t], c->proto, s, j.observe, err);
    if (!rc) {
        rc = es_parallel(threads, chunks, sweep_chunk, &j);
        if (rc) {
            const char *why = j.w[0].p ? es_policy_errmsg(j.w[0].p) : "";
            for (int t = 1; !why[0] && t < threads; t++) why = es_policy_errmsg(j.w[t].p);
            es_error_set(err, rc, "", 0, "", "%s: %s", es_policy_spec(c->proto), why[0] ? why : es_strerror(rc));
        }
    }
    int dir = 0;
    for (int t = 0; !rc && t < threads; t++) {
        if (j.w[t].mixed || (dir && j.w[t].dir && j.w[t].dir != dir))
            rc = es_error_set(err, ES_EINVAL, "", 0, "", "%s: the rule's boundary changed direction", c->family);
        if (j.w[t].dir) dir = j.w[t].dir;
    }
    if (!dir) dir = ES_BOUND_UPPER;
    /* the events in item order, whatever thread made them, then their keys sorted */
    tn_event *ev = NULL;
    tn_key *key = NULL;
    size_t n_ev = 0;
    for (size_t k = 0; !rc && k < chunks; k++) n_ev += j.chunk_ev[k].n;
    if (!rc && (!(ev = malloc((n_ev + 1) * sizeof *ev)) || !(key = malloc((n_ev + 1) * sizeof *key))))
        rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    for (size_t k = 0, at_ = 0; !rc && k < chunks; k++) {
        if (j.chunk_ev[k].n) memcpy(ev + at_, j.chunk_ev[k].e, j.chunk_ev[k].n * sizeof *ev);
        at_ += j.chunk_ev[k].n;
        free(j.chunk_ev[k].e);
        j.chunk_ev[k].e = NULL;
    }
    for (size_t i = 0; !rc && i < n_ev; i++) key[i] = (tn_key){ev[i].value, ev[i].io, (uint32_t)i};
    if (!rc && sort_keys(key, n_ev, dir)) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    size_t *idx = n_at ? malloc(n_at * sizeof *idx) : NULL;
    if (n_at && !idx) rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (!rc) {
        for (uint32_t io = 0; io < n_io; io++) {
            w.cur[io] = j.nostop[io];
            walk_add(&w, io, &j.nostop[io], +1);
        }
        sort_at(at, idx, n_at, dir);
        rc = walk_events(&w, ev, key, n_ev, dir, !j.observe, at, idx, n_at, fn, ctx, cands, n_cands);
        if (rc && err && !err->msg[0]) es_error_set(err, rc, "", 0, "", "%s", es_strerror(rc));
    }
    free(ev);
    free(key);
    free(idx);
    for (int t = 0; j.w && t < threads; t++) worker_free(&j.w[t]);
    for (size_t k = 0; j.chunk_ev && k < chunks; k++) free(j.chunk_ev[k].e);
    free(j.w);
    free(j.chunk_ev);
    free(j.nostop);
    free(w.cur);
    free(w.loss);
    free(w.file_loss);
    if (rc) {
        free(*cands);
        *cands = NULL;
        *n_cands = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------- points */

void tn_point(const tn_set *s, const tn_sum *sum, es_tune_point *p)
{
    double n = (double)(s->n ? s->n : 1), nr = n * s->R;
    p->em = (double)sum->correct / nr;
    p->em_full = s->em_full;
    p->tokens = (double)sum->tokens / nr;
    p->kv = (double)sum->kv / nr;
    p->share = sum->share / n;
    p->cost = sum->cost / n;
    p->loss = s->file_n ? sum->worst : (double)sum->loss / nr;
    p->pvalue = NAN;
    p->certified = 0;
}
