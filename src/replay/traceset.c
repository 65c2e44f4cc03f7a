/*
 * traceset.c - the compact in-memory form of traces, for replay.
 *
 * Every per-sample and per-probe field lives in one flat array over the whole
 * set (structure of arrays), so a replay walks contiguous integers.  Answers
 * are interned per item by the core's es_interner: ES_NULL_ANSWER (0), then
 * 1, 2, ... in order of first appearance, so a vote is integer counting.
 * Whether an answer is correct is decided once, at
 * load, against every accepted gold answer.  The spelling shown for an
 * answer is the most common raw string among the samples that share its key
 * (ties to the first seen), so a decision prints "\\frac{9}{100}" when 42
 * samples wrote that and 38 wrote "0.09" first.  Strings live in a chunked
 * arena whose blocks never move, so the pointers handed out stay valid.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop_replay.h"

typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
} arena_block;

typedef struct item_rec {
    const char *id, *task, *gold;
    uint32_t sample_begin, n_samples;
    uint32_t ans_begin, n_answers;
    es_answer_type type;
} item_rec;

struct es_traceset {
    unsigned flags;
    item_rec *items;
    size_t n_items, items_cap;
    /* samples, global */
    int32_t *s_answer;
    uint32_t *s_tokens;
    float *s_conf;
    uint32_t *s_probe_off;   /* n_samples + 1 entries */
    const char **s_text;
    size_t n_samples, samples_cap;
    /* probes, global */
    uint32_t *p_at;
    int32_t *p_answer;
    float *p_conf, *p_wconf;
    int32_t *p_cost;
    uint8_t *p_cues;
    size_t n_probes, probes_cap;
    /* answers, global; item i owns [ans_begin, ans_begin + n_answers) */
    uint8_t *a_correct, *a_flags;
    const char **a_key, **a_raw;
    size_t n_ans, ans_cap;
    /* strings */
    arena_block *arena;
    size_t arena_bytes;
    /* scratch: a normalised gold key, and the interner of one item's answers
     * (made again, larger, when an item needs more room than any before) */
    char *key;
    size_t key_cap;
    es_interner *in;
    es_answer_type in_type;
    uint32_t in_answers;
    size_t in_key_bytes;
    /* scratch: distinct raw spellings of one item's sample answers */
    const char **sp_raw;
    uint32_t *sp_count;
    int32_t *sp_answer, *sp_slots, *sp_best;
    size_t sp_cap, sp_slots_cap, sp_best_cap;
    /* item ids seen, for duplicate detection: open addressing over item index + 1 */
    uint32_t *ids;
    size_t ids_cap;
};

/* FNV-1a: small, good enough for short answer keys and ids. */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Copy n bytes + NUL into the arena; blocks never move once made. */
static const char *arena_strndup(es_traceset *ts, const char *s, size_t n)
{
    arena_block *b = ts->arena;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > 65536 ? n + 1 : 65536;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = ts->arena;
        b->used = 0;
        b->cap = cap;
        ts->arena = b;
        ts->arena_bytes += sizeof *b + cap;
    }
    char *p = b->data + b->used;
    memcpy(p, s, n);
    p[n] = '\0';
    b->used += n + 1;
    return p;
}

static const char *arena_strdup(es_traceset *ts, const char *s)
{
    return arena_strndup(ts, s, strlen(s));
}

/* realloc each array in a list to cap elements; all-or-nothing is not needed
 * since a failed grow leaves the old (still valid) arrays in place. */
static int grow_to(void **p, size_t cap, size_t sz)
{
    void *q = realloc(*p, cap * sz);
    if (!q) return ES_ENOMEM;
    *p = q;
    return ES_OK;
}

static size_t next_cap(size_t cap, size_t need)
{
    size_t c = cap ? cap : 64;
    while (c < need) c *= 2;
    return c;
}

static int reserve_items(es_traceset *ts, size_t need)
{
    if (need <= ts->items_cap) return ES_OK;
    size_t c = next_cap(ts->items_cap, need);
    if (grow_to((void **)&ts->items, c, sizeof *ts->items)) return ES_ENOMEM;
    ts->items_cap = c;
    return ES_OK;
}

static int reserve_samples(es_traceset *ts, size_t need)
{
    if (need <= ts->samples_cap) return ES_OK;
    size_t c = next_cap(ts->samples_cap, need);
    if (grow_to((void **)&ts->s_answer, c, sizeof(int32_t)) || grow_to((void **)&ts->s_tokens, c, sizeof(uint32_t)) ||
        grow_to((void **)&ts->s_conf, c, sizeof(float)) || grow_to((void **)&ts->s_probe_off, c + 1, sizeof(uint32_t)))
        return ES_ENOMEM;
    if ((ts->flags & ES_KEEP_TEXT) && grow_to((void **)&ts->s_text, c, sizeof(char *))) return ES_ENOMEM;
    ts->samples_cap = c;
    return ES_OK;
}

static int reserve_probes(es_traceset *ts, size_t need)
{
    if (need <= ts->probes_cap) return ES_OK;
    size_t c = next_cap(ts->probes_cap, need);
    if (grow_to((void **)&ts->p_at, c, sizeof(uint32_t)) || grow_to((void **)&ts->p_answer, c, sizeof(int32_t)) ||
        grow_to((void **)&ts->p_conf, c, sizeof(float)) || grow_to((void **)&ts->p_wconf, c, sizeof(float)) ||
        grow_to((void **)&ts->p_cost, c, sizeof(int32_t)) || grow_to((void **)&ts->p_cues, c, 1))
        return ES_ENOMEM;
    ts->probes_cap = c;
    return ES_OK;
}

static int reserve_answers(es_traceset *ts, size_t need)
{
    if (need <= ts->ans_cap) return ES_OK;
    size_t c = next_cap(ts->ans_cap, need);
    if (grow_to((void **)&ts->a_correct, c, 1) || grow_to((void **)&ts->a_flags, c, 1) ||
        grow_to((void **)&ts->a_key, c, sizeof(char *)) ||
        grow_to((void **)&ts->a_raw, c, sizeof(char *)))
        return ES_ENOMEM;
    ts->ans_cap = c;
    return ES_OK;
}

int es_traceset_new(unsigned flags, es_traceset **out)
{
    *out = NULL;
    es_traceset *ts = calloc(1, sizeof *ts);
    if (!ts) return ES_ENOMEM;
    ts->flags = flags;
    if (reserve_samples(ts, 1)) {
        es_traceset_free(ts);
        return ES_ENOMEM;
    }
    ts->s_probe_off[0] = 0;
    *out = ts;
    return ES_OK;
}

void es_traceset_free(es_traceset *ts)
{
    if (!ts) return;
    for (arena_block *b = ts->arena, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    void *arrays[] = {ts->items, ts->s_answer, ts->s_tokens, ts->s_conf, ts->s_probe_off, ts->s_text,
                      ts->p_at, ts->p_answer, ts->p_conf, ts->p_wconf, ts->p_cost, ts->p_cues, ts->a_correct, ts->a_flags,
                      ts->a_key, ts->a_raw, ts->key, ts->ids, ts->sp_raw, ts->sp_count,
                      ts->sp_answer, ts->sp_slots, ts->sp_best};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
    es_interner_free(ts->in);
    free(ts);
}

/* Normalise s into ts->key, growing the buffer as needed. */
static int normalize_into(es_traceset *ts, es_answer_type t, const char *s)
{
    size_t n = strlen(s), want = n + 64;
    for (;;) {
        if (ts->key_cap < want) {
            size_t c = next_cap(ts->key_cap, want);
            if (grow_to((void **)&ts->key, c, 1)) return ES_ENOMEM;
            ts->key_cap = c;
        }
        int k = es_answer_normalize(t, s, n, ts->key, ts->key_cap);
        if (k >= 0) return ES_OK;
        if (k != ES_ERANGE) return k;
        want = ts->key_cap * 2; /* a number key can outgrow its input: retry larger */
    }
}

/* An interner of type t for up to `answers` ids and `key_bytes` of keys,
 * reset; the one kept is reused while it is large enough. */
static int ready_interner(es_traceset *ts, es_answer_type t, uint32_t answers, size_t key_bytes)
{
    if (ts->in && ts->in_type == t && ts->in_answers >= answers && ts->in_key_bytes >= key_bytes) {
        es_interner_reset(ts->in);
        return ES_OK;
    }
    es_interner_free(ts->in);
    ts->in = NULL;
    if (answers < 2 * ts->in_answers) answers = 2 * ts->in_answers;
    if (key_bytes < 2 * ts->in_key_bytes) key_bytes = 2 * ts->in_key_bytes;
    int rc = es_interner_new(t, answers, key_bytes, &ts->in);
    if (rc) return rc;
    ts->in_type = t;
    ts->in_answers = answers;
    ts->in_key_bytes = key_bytes;
    return ES_OK;
}

/* The item's answer slot for id a; a new id gets its key copied into the
 * arena.  Its spelling (a_raw) points into the caller's item until
 * choose_spellings copies the chosen one. */
static int add_answer(es_traceset *ts, item_rec *it, int32_t a, const char *raw)
{
    if ((uint32_t)a < it->n_answers) return ES_OK;
    if (reserve_answers(ts, ts->n_ans + 1)) return ES_ENOMEM;
    const char *key = es_interner_key(ts->in, a);
    if (key && !(key = arena_strdup(ts, key))) return ES_ENOMEM;
    ts->a_key[ts->n_ans] = key;
    ts->a_raw[ts->n_ans] = raw;
    ts->a_flags[ts->n_ans] = es_answer_wellformed(it->type, key) ? ES_ANSWER_WELLFORMED : 0;
    ts->a_correct[ts->n_ans++] = 0;
    it->n_answers++;
    return ES_OK;
}

/* Id of answer `raw` (NULL = null) within item `it`, adding it when new. */
static int intern(es_traceset *ts, item_rec *it, const char *raw, int32_t *id)
{
    int32_t a = es_interner_intern(ts->in, raw);
    if (a < 0) return a;
    *id = a;
    return add_answer(ts, it, a, raw);
}

/* Count the distinct raw spellings of the item's sample answers (n samples)
 * and point each answer's a_raw at its most common one; entries are kept in
 * first-seen order, so a tie keeps the earlier spelling. */
static int count_spellings(es_traceset *ts, const item_rec *it, const es_item *item, const char **raw)
{
    size_t n = item->n_samples, ns = 0, need = next_cap(16, 2 * n + 2);
    if (n > ts->sp_cap) {
        size_t c = next_cap(ts->sp_cap, n);
        if (grow_to((void **)&ts->sp_raw, c, sizeof(char *)) || grow_to((void **)&ts->sp_count, c, sizeof(uint32_t)) ||
            grow_to((void **)&ts->sp_answer, c, sizeof(int32_t)))
            return ES_ENOMEM;
        ts->sp_cap = c;
    }
    if (need > ts->sp_slots_cap) {
        if (grow_to((void **)&ts->sp_slots, need, sizeof(int32_t))) return ES_ENOMEM;
        ts->sp_slots_cap = need;
    }
    if (it->n_answers > ts->sp_best_cap) {
        size_t c = next_cap(ts->sp_best_cap, it->n_answers);
        if (grow_to((void **)&ts->sp_best, c, sizeof(int32_t))) return ES_ENOMEM;
        ts->sp_best_cap = c;
    }
    memset(ts->sp_best, 0xff, it->n_answers * sizeof(int32_t));
    memset(ts->sp_slots, 0xff, need * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) {
        const char *a = item->samples[i].answer;
        if (!a) continue;
        size_t h = (size_t)hash_str(a) & (need - 1);
        while (ts->sp_slots[h] >= 0 && strcmp(ts->sp_raw[ts->sp_slots[h]], a)) h = (h + 1) & (need - 1);
        if (ts->sp_slots[h] >= 0) {
            ts->sp_count[ts->sp_slots[h]]++;
            continue;
        }
        ts->sp_slots[h] = (int32_t)ns;
        ts->sp_raw[ns] = a;
        ts->sp_count[ns] = 1;
        ts->sp_answer[ns++] = ts->s_answer[it->sample_begin + i];
    }
    for (size_t e = 0; e < ns; e++) {
        int32_t a = ts->sp_answer[e], b = ts->sp_best[a];
        if (b < 0 || ts->sp_count[e] > ts->sp_count[b]) {
            ts->sp_best[a] = (int32_t)e;
            raw[a] = ts->sp_raw[e];
        }
    }
    return ES_OK;
}

/* Give each answer of the item its spelling, copied into the arena: the
 * most common among the samples (counted only when the samples spell some
 * answer two ways, the rare case), else the first seen; an answer only
 * probes gave keeps its first probe spelling. */
static int choose_spellings(es_traceset *ts, const item_rec *it, const es_item *item)
{
    const char **raw = ts->a_raw + it->ans_begin;
    for (size_t i = 0; i < item->n_samples; i++) {
        const char *a = item->samples[i].answer;
        if (a && strcmp(a, raw[ts->s_answer[it->sample_begin + i]])) {
            int rc = count_spellings(ts, it, item, raw);
            if (rc) return rc;
            break;
        }
    }
    for (uint32_t a = 0; a < it->n_answers; a++)
        if (raw[a] && !(raw[a] = arena_strdup(ts, raw[a]))) return ES_ENOMEM;
    return ES_OK;
}

/* Mark each interned answer that equals some accepted gold answer. */
static int mark_correct(es_traceset *ts, const item_rec *it, const es_item *item)
{
    for (size_t g = 0; g < item->n_gold; g++) {
        if (!item->gold[g]) continue;
        int rc = normalize_into(ts, it->type, item->gold[g]);
        if (rc) return rc;
        for (uint32_t a = 0; a < it->n_answers; a++) {
            const char *k = ts->a_key[it->ans_begin + a];
            if (k && !strcmp(k, ts->key)) ts->a_correct[it->ans_begin + a] = 1;
        }
    }
    return ES_OK;
}

/* Register the item id; ES_EFORMAT when it was seen before. */
static int check_unique_id(es_traceset *ts, const char *id)
{
    if (2 * (ts->n_items + 1) > ts->ids_cap) {
        size_t c = next_cap(ts->ids_cap, 4 * (ts->n_items + 1));
        uint32_t *ids = calloc(c, sizeof *ids);
        if (!ids) return ES_ENOMEM;
        for (size_t i = 0; i < ts->n_items; i++) {
            size_t h = (size_t)hash_str(ts->items[i].id) & (c - 1);
            while (ids[h]) h = (h + 1) & (c - 1);
            ids[h] = (uint32_t)i + 1;
        }
        free(ts->ids);
        ts->ids = ids;
        ts->ids_cap = c;
    }
    size_t h = (size_t)hash_str(id) & (ts->ids_cap - 1);
    for (; ts->ids[h]; h = (h + 1) & (ts->ids_cap - 1))
        if (!strcmp(ts->items[ts->ids[h] - 1].id, id)) return ES_EFORMAT;
    ts->ids[h] = (uint32_t)ts->n_items + 1;
    return ES_OK;
}

static float to_float(double x) { return isnan(x) ? NAN : (float)x; }

/* Room an item's answers can need in the interner: every sample and probe
 * a distinct answer, each key a little longer than its text (a number's key
 * can outgrow its spelling: 1e5 keys as 100000). */
static void answer_room(const es_item *item, uint32_t *answers, size_t *key_bytes)
{
    size_t n = 1, bytes = 64;
    for (size_t i = 0; i < item->n_samples; i++) {
        const es_sample *s = &item->samples[i];
        n += 1 + s->n_probes;
        if (s->answer) bytes += strlen(s->answer) + 64;
        for (size_t j = 0; j < s->n_probes; j++)
            if (s->probes[j].answer) bytes += strlen(s->probes[j].answer) + 64;
    }
    *answers = n > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)n;
    *key_bytes = bytes;
}

/* Intern every answer of the item: all samples first, in order, then the
 * probes, so that ids follow first appearance in the vote. */
static int intern_all(es_traceset *ts, item_rec *it, const es_item *item)
{
    size_t p = ts->n_probes;
    for (size_t i = 0; i < item->n_samples; i++) {
        int rc = intern(ts, it, item->samples[i].answer, &ts->s_answer[ts->n_samples + i]);
        if (rc) return rc;
    }
    for (size_t i = 0; i < item->n_samples; i++)
        for (size_t j = 0; j < item->samples[i].n_probes; j++, p++) {
            int rc = intern(ts, it, item->samples[i].probes[j].answer, &ts->p_answer[p]);
            if (rc) return rc;
        }
    return ES_OK;
}

/* Append the item's samples and probes to the flat arrays. */
static int add_samples(es_traceset *ts, item_rec *it, const es_item *item)
{
    size_t n = item->n_samples, np = 0;
    for (size_t i = 0; i < n; i++) np += item->samples[i].n_probes;
    if (reserve_samples(ts, ts->n_samples + n) || reserve_probes(ts, ts->n_probes + np)) return ES_ENOMEM;
    uint32_t room;
    size_t key_bytes;
    answer_room(item, &room, &key_bytes);
    int rc;
    for (;;) {
        /* id 0 is the null answer's in every item, never correct */
        if ((rc = ready_interner(ts, it->type, room, key_bytes)) || (rc = add_answer(ts, it, ES_NULL_ANSWER, NULL)))
            return rc;
        rc = intern_all(ts, it, item);
        if (rc != ES_ERANGE) break;
        /* a key longer than the room guessed: start the item again, larger */
        ts->n_ans = it->ans_begin;
        it->n_answers = 0;
        key_bytes *= 4;
    }
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        const es_sample *s = &item->samples[i];
        size_t k = ts->n_samples + i;
        ts->s_tokens[k] = s->tokens;
        ts->s_conf[k] = to_float(s->confidence);
        if (ts->flags & ES_KEEP_TEXT) {
            ts->s_text[k] = s->text ? arena_strdup(ts, s->text) : NULL;
            if (s->text && !ts->s_text[k]) return ES_ENOMEM;
        }
    }
    size_t p = ts->n_probes;
    for (size_t i = 0; i < n; i++) {
        const es_sample *s = &item->samples[i];
        for (size_t j = 0; j < s->n_probes; j++, p++) {
            const es_probe *pr = &s->probes[j];
            ts->p_at[p] = pr->at;
            ts->p_conf[p] = to_float(pr->confidence);
            ts->p_wconf[p] = to_float(pr->window_confidence);
            ts->p_cost[p] = pr->cost;
            ts->p_cues[p] = (uint8_t)(pr->cues & (ES_CUE_CONCLUDE | ES_CUE_CHECK | ES_CUE_END | ES_CUE_READ));
        }
        ts->s_probe_off[ts->n_samples + i + 1] = (uint32_t)p;
    }
    rc = choose_spellings(ts, it, item);
    if (rc) return rc;
    ts->n_samples += n;
    ts->n_probes = p;
    return ES_OK;
}

int es_traceset_add(es_traceset *ts, const es_item *item, es_error *err)
{
    if (!item->id || !item->n_samples || !item->n_gold)
        return es_error_set(err, ES_EFORMAT, "", 0, !item->id ? "id" : item->n_gold ? "samples" : "gold",
                            "missing");
    if (ts->n_samples + item->n_samples > UINT32_MAX / 2)
        return es_error_set(err, ES_ERANGE, "", 0, "samples", "too many samples for one set");
    if (reserve_items(ts, ts->n_items + 1)) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    item_rec *it = &ts->items[ts->n_items];
    memset(it, 0, sizeof *it);
    it->id = arena_strdup(ts, item->id);
    it->task = arena_strdup(ts, item->task ? item->task : "");
    it->gold = arena_strdup(ts, item->gold[0] ? item->gold[0] : "");
    if (!it->id || !it->task || !it->gold) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    it->type = item->answer_type;
    it->sample_begin = (uint32_t)ts->n_samples;
    it->n_samples = (uint32_t)item->n_samples;
    it->ans_begin = (uint32_t)ts->n_ans;
    size_t n_ans0 = ts->n_ans, n_s0 = ts->n_samples, n_p0 = ts->n_probes;
    int rc = add_samples(ts, it, item);
    if (rc == ES_OK) rc = mark_correct(ts, it, item);
    /* last, so that a failed add never leaves its id registered */
    if (rc == ES_OK) rc = check_unique_id(ts, it->id);
    if (rc) {
        /* roll back so the set stays consistent for --skip-bad callers */
        ts->n_ans = n_ans0;
        ts->n_samples = n_s0;
        ts->n_probes = n_p0;
        if (rc == ES_EFORMAT) return es_error_set(err, rc, "", 0, "id", "duplicate id '%s'", item->id);
        return es_error_set(err, rc, "", 0, "", "%s", es_strerror(rc));
    }
    ts->n_items++;
    return ES_OK;
}

size_t es_traceset_n_items(const es_traceset *ts) { return ts->n_items; }
size_t es_traceset_n_samples(const es_traceset *ts) { return ts->n_samples; }
size_t es_traceset_n_probes(const es_traceset *ts) { return ts->n_probes; }

size_t es_traceset_bytes(const es_traceset *ts)
{
    size_t per_sample = 3 * 4 + 4 + ((ts->flags & ES_KEEP_TEXT) ? sizeof(char *) : 0);
    return sizeof *ts + ts->items_cap * sizeof(item_rec) + ts->samples_cap * per_sample +
           ts->probes_cap * (5 * 4 + 1) + ts->ans_cap * (2 + 2 * sizeof(char *)) + ts->arena_bytes +
           ts->key_cap + ts->ids_cap * 4 + ts->sp_cap * (sizeof(char *) + 8) +
           ts->sp_slots_cap * 4 + ts->sp_best_cap * 4;
}

int es_traceset_item(const es_traceset *ts, size_t i, es_item_view *v)
{
    if (i >= ts->n_items) return ES_ERANGE;
    const item_rec *it = &ts->items[i];
    uint32_t s = it->sample_begin;
    *v = (es_item_view){
        .id = it->id,
        .task = it->task,
        .answer_type = it->type,
        .n_samples = it->n_samples,
        .n_answers = it->n_answers,
        .answer = ts->s_answer + s,
        .tokens = ts->s_tokens + s,
        .confidence = ts->s_conf + s,
        .correct = ts->a_correct + it->ans_begin,
        .answer_key = ts->a_key + it->ans_begin,
        .answer_raw = ts->a_raw + it->ans_begin,
        .answer_flags = ts->a_flags + it->ans_begin,
        .gold = it->gold,
        .probe_off = ts->s_probe_off + s,
        .probe_at = ts->p_at,
        .probe_answer = ts->p_answer,
        .probe_confidence = ts->p_conf,
        .probe_window_confidence = ts->p_wconf,
        .probe_cost = ts->p_cost,
        .probe_cues = ts->p_cues,
        .text = (ts->flags & ES_KEEP_TEXT) ? ts->s_text + s : NULL,
    };
    return ES_OK;
}
