/*
 * trace_io.c - trace format v1 (JSON Lines) reader and writer, on jansson.
 *
 * The reader streams: it holds one line and its parsed JSON at a time, and
 * the es_item it hands out points into that JSON, so memory stays bounded by
 * the longest line whatever the file size.  Every error names the file, the
 * line and the field.  The writer emits keys in one fixed order with fixed
 * number formatting, so reading a file and writing it back is a fixed point.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "earlystop_io.h"

/* Lines are read ahead in batches and parsed by all cores at once: jansson
 * is most of the reader's time and lines parse independently.  Items are
 * still handed out one at a time, in file order, so memory stays bounded by
 * BATCH lines. */
enum { BATCH = 64 };

typedef struct line_slot {
    char *buf;
    size_t cap, len;
    long line;
    int complete;
    json_t *json;           /* NULL when the line did not parse */
} line_slot;

struct es_trace_reader {
    FILE *fp;
    int own_fp;
    unsigned flags;
    char path[256];
    long line;              /* line of the item being read (for errors) */
    long lines_read;        /* lines consumed from the file, read-ahead included */
    uint64_t bytes;
    char *buf;              /* getline buffer of the header */
    size_t buf_cap;
    line_slot batch[BATCH]; /* read-ahead: lines parsed in parallel */
    int n_batch, pos_batch, eof;
    int pending_rc;         /* an I/O error met while reading ahead */
    es_error pending_err;
    char *header;           /* compact JSON of the header line */
    json_t *cur;            /* parsed current item, owns the strings handed out */
    es_sample *samples;
    size_t samples_cap;
    es_probe *probes;
    size_t probes_cap;
    const char **gold;
    size_t gold_cap;
    char *numbuf;           /* numbers turned into strings (gold / answers) */
    size_t numbuf_len, numbuf_cap;
    size_t skipped;
    es_error last_skip;
};

/* Grow *arr to hold at least n elements of size sz, doubling. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap) return ES_OK;
    size_t c = *cap ? *cap : 16;
    while (c < n) c *= 2;
    void *p = realloc(*arr, c * sz);
    if (!p) return ES_ENOMEM;
    *arr = p;
    *cap = c;
    return ES_OK;
}

/* Fail for the current line with a field-level message. */
static int bad(es_trace_reader *r, es_error *err, int code, const char *field, const char *msg)
{
    return es_error_set(err, code, r->path, r->line, field, "%s", msg);
}

/* Read one raw line (without its newline) into *buf; ES_EOF at the end.
 * *complete is 0 when the file ended without a newline (a truncated line). */
static int read_line(es_trace_reader *r, char **buf, size_t *cap, size_t *len, int *complete, es_error *err)
{
    errno = 0;
    ssize_t n = getline(buf, cap, r->fp);
    if (n < 0) {
        if (ferror(r->fp))
            return es_error_set(err, ES_EIO, r->path, r->lines_read + 1, "", "read failed: %s",
                                strerror(errno ? errno : EIO));
        return ES_EOF;
    }
    r->lines_read++;
    r->bytes += (uint64_t)n;
    char *b = *buf;
    *complete = n > 0 && b[n - 1] == '\n';
    if (*complete) b[--n] = '\0';
    if (n > 0 && b[n - 1] == '\r') b[--n] = '\0';
    *len = (size_t)n;
    return ES_OK;
}

/* 1 when the line holds only white space (blank lines are skipped). */
static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

/* Turn a line into a JSON object: *out may already hold the line's parse
 * (from the parallel read-ahead), else it is parsed here.  A failure names
 * truncation when the file ended mid-line. */
static int parse_line(es_trace_reader *r, const char *buf, size_t len, int complete, json_t **out,
                      es_error *err)
{
    json_error_t je;
    json_t *j = *out ? *out : json_loadb(buf, len, JSON_ALLOW_NUL, &je);
    *out = NULL;
    if (!j) {
        if (!complete)
            return es_error_set(err, ES_EPARSE, r->path, r->line, "",
                                "truncated line (file ends mid-item): %s", je.text);
        return es_error_set(err, ES_EPARSE, r->path, r->line, "",
                            "invalid JSON at column %d: %s", je.column, je.text);
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return bad(r, err, ES_EFORMAT, "", "a line must be a JSON object");
    }
    *out = j;
    return ES_OK;
}

static int check_header(es_trace_reader *r, json_t *h, es_error *err)
{
    json_t *f = json_object_get(h, "format");
    if (!json_is_string(f) || strcmp(json_string_value(f), "earlystop-traces"))
        return bad(r, err, ES_EFORMAT, "format",
                   "first line must be the header {\"format\":\"earlystop-traces\",\"version\":1}");
    json_t *v = json_object_get(h, "version");
    if (!json_is_integer(v) || json_integer_value(v) != 1)
        return bad(r, err, ES_EFORMAT, "version", "unsupported version (this reader reads version 1)");
    r->header = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    return r->header ? ES_OK : ES_ENOMEM;
}

int es_trace_reader_open(const char *path, unsigned flags, es_trace_reader **out, es_error *err)
{
    *out = NULL;
    es_trace_reader *r = calloc(1, sizeof *r);
    if (!r) return es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
    snprintf(r->path, sizeof r->path, "%s", path);
    r->flags = flags;
    if (!strcmp(path, "-")) {
        r->fp = stdin;
    } else {
        r->fp = fopen(path, "rb");
        r->own_fp = 1;
        if (!r->fp) {
            int e = errno;
            free(r);
            return es_error_set(err, ES_EIO, path, 0, "", "cannot open: %s", strerror(e));
        }
    }
    size_t len;
    int complete, rc;
    do {
        rc = read_line(r, &r->buf, &r->buf_cap, &len, &complete, err);
        r->line = r->lines_read;
    } while (rc == ES_OK && blank(r->buf, len));
    if (rc == ES_EOF) rc = bad(r, err, ES_EFORMAT, "", "empty file: no header line");
    json_t *h = NULL;
    if (rc == ES_OK) rc = parse_line(r, r->buf, len, complete, &h, err);
    if (rc == ES_OK) rc = check_header(r, h, err);
    json_decref(h);
    if (rc != ES_OK) {
        es_trace_reader_free(r);
        return rc;
    }
    *out = r;
    return ES_OK;
}

void es_trace_reader_free(es_trace_reader *r)
{
    if (!r) return;
    if (r->own_fp && r->fp) fclose(r->fp);
    json_decref(r->cur);
    for (int i = 0; i < BATCH; i++) {
        json_decref(r->batch[i].json);
        free(r->batch[i].buf);
    }
    free(r->buf);
    free(r->header);
    free(r->samples);
    free(r->probes);
    free(r->gold);
    free(r->numbuf);
    free(r);
}

/* Stash a number's text in numbuf; returns its offset (pointers are fixed
 * up once the item is complete, since numbuf may move while growing). */
static int stash_number(es_trace_reader *r, json_t *v, size_t *off)
{
    char tmp[64];
    int n = json_is_integer(v) ? snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v))
                               : snprintf(tmp, sizeof tmp, "%.15g", json_real_value(v));
    if (grow((void **)&r->numbuf, &r->numbuf_cap, r->numbuf_len + (size_t)n + 1, 1)) return ES_ENOMEM;
    memcpy(r->numbuf + r->numbuf_len, tmp, (size_t)n + 1);
    *off = r->numbuf_len;
    r->numbuf_len += (size_t)n + 1;
    return ES_OK;
}

/* A slot that must point at a stashed number once numbuf stops moving. */
typedef struct num_slot {
    const char **slot;
    size_t off;
} num_slot;

typedef struct num_slots {
    num_slot *v;
    size_t n, cap;
} num_slots;

/* Where a value sits in the item.  The field name is only spelled out when
 * something is wrong, so reading a good item formats no strings at all. */
typedef struct loc {
    long sample, probe, gold;  /* -1 when not inside one */
    const char *key;           /* NULL for the element itself */
} loc;

static void loc_name(const loc *l, char *buf, size_t cap)
{
    const char *dot = l->key ? "." : "", *key = l->key ? l->key : "";
    if (l->gold >= 0) snprintf(buf, cap, "gold[%ld]", l->gold);
    else if (l->sample < 0) snprintf(buf, cap, "%s", key);
    else if (l->probe < 0) snprintf(buf, cap, "samples[%ld]%s%s", l->sample, dot, key);
    else snprintf(buf, cap, "samples[%ld].probes[%ld]%s%s", l->sample, l->probe, dot, key);
}

static int bad_at(es_trace_reader *r, es_error *err, loc l, const char *key, const char *msg)
{
    char field[128];
    l.key = key;
    loc_name(&l, field, sizeof field);
    return bad(r, err, ES_EFORMAT, field, msg);
}

/* An answer-like value: string, null, or number (kept as its text). */
static int get_answer(es_trace_reader *r, json_t *v, const char **dst, num_slots *ns,
                      int allow_null, loc l, const char *key, es_error *err)
{
    if (json_is_string(v)) { *dst = json_string_value(v); return ES_OK; }
    if (allow_null && json_is_null(v)) { *dst = NULL; return ES_OK; }
    if (json_is_number(v)) {
        size_t off;
        if (stash_number(r, v, &off)) return ES_ENOMEM;
        if (grow((void **)&ns->v, &ns->cap, ns->n + 1, sizeof *ns->v)) return ES_ENOMEM;
        ns->v[ns->n++] = (num_slot){dst, off};
        *dst = NULL;
        return ES_OK;
    }
    return bad_at(r, err, l, key,
                  allow_null ? "must be a string, a number or null" : "must be a string or a number");
}

/* A non-negative integer that fits uint32. */
static int get_count(es_trace_reader *r, json_t *v, uint32_t *dst, loc l, const char *key, es_error *err)
{
    if (!v) return bad_at(r, err, l, key, "missing (a non-negative integer is required)");
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
        return bad_at(r, err, l, key, "must be a non-negative integer");
    *dst = (uint32_t)json_integer_value(v);
    return ES_OK;
}

/* Optional number; NaN when absent. [lo,hi] bounds when lo <= hi. */
static int get_opt_real(es_trace_reader *r, json_t *v, double lo, double hi, double *dst, loc l,
                        const char *key, es_error *err)
{
    *dst = NAN;
    if (!v || json_is_null(v)) return ES_OK;
    if (!json_is_number(v)) return bad_at(r, err, l, key, "must be a number");
    double x = json_number_value(v);
    if (lo <= hi && !(x >= lo && x <= hi)) {
        char msg[96];
        snprintf(msg, sizeof msg, "must be in [%g, %g], got %g", lo, hi, x);
        return bad_at(r, err, l, key, msg);
    }
    *dst = x;
    return ES_OK;
}

static int get_probe(es_trace_reader *r, json_t *p, es_probe *out, uint32_t prev_at, uint32_t tokens,
                     num_slots *ns, loc l, es_error *err)
{
    if (!json_is_object(p)) return bad_at(r, err, l, NULL, "a probe must be an object");
    int rc = get_count(r, json_object_get(p, "at"), &out->at, l, "at", err);
    if (rc) return rc;
    if (out->at < prev_at) return bad_at(r, err, l, "at", "goes backwards (probes must be in token order)");
    if (out->at > tokens) return bad_at(r, err, l, "at", "beyond the sample's tokens");
    json_t *a = json_object_get(p, "answer");
    if (!a) return bad_at(r, err, l, "answer", "missing (use null when no answer was found)");
    if ((rc = get_answer(r, a, &out->answer, ns, 1, l, "answer", err))) return rc;
    if ((rc = get_opt_real(r, json_object_get(p, "confidence"), 0, 1, &out->confidence, l, "confidence", err)))
        return rc;
    if ((rc = get_opt_real(r, json_object_get(p, "window_confidence"), 1, 0, &out->window_confidence, l,
                           "window_confidence", err)))
        return rc;
    out->cost = -1;
    json_t *c = json_object_get(p, "cost");
    if (c && !json_is_null(c)) {
        uint32_t cost;
        if ((rc = get_count(r, c, &cost, l, "cost", err))) return rc;
        if (cost > INT32_MAX) return bad_at(r, err, l, "cost", "too large");
        out->cost = (int32_t)cost;
    }
    return ES_OK;
}

/* Probes of sample si go to r->probes[*np ...]; offsets fixed up later. */
static int get_probes(es_trace_reader *r, json_t *arr, size_t si, uint32_t tokens, size_t *np,
                      num_slots *ns, es_error *err)
{
    loc l = {(long)si, -1, -1, NULL};
    if (!arr || json_is_null(arr)) return ES_OK;
    if (!json_is_array(arr)) return bad_at(r, err, l, "probes", "must be an array");
    size_t n = json_array_size(arr);
    if (grow((void **)&r->probes, &r->probes_cap, *np + n, sizeof *r->probes)) return ES_ENOMEM;
    uint32_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        l.probe = (long)i;
        int rc = get_probe(r, json_array_get(arr, i), &r->probes[*np + i], prev, tokens, ns, l, err);
        if (rc) return rc;
        prev = r->probes[*np + i].at;
    }
    *np += n;
    return ES_OK;
}

static int get_sample(es_trace_reader *r, json_t *s, size_t si, size_t *np, num_slots *ns,
                      es_error *err)
{
    loc l = {(long)si, -1, -1, NULL};
    es_sample *out = &r->samples[si];
    if (!json_is_object(s)) return bad_at(r, err, l, NULL, "a sample must be an object");
    json_t *a = json_object_get(s, "answer");
    if (!a) return bad_at(r, err, l, "answer", "missing (use null when no answer was found)");
    int rc = get_answer(r, a, &out->answer, ns, 1, l, "answer", err);
    if (rc) return rc;
    if ((rc = get_count(r, json_object_get(s, "tokens"), &out->tokens, l, "tokens", err))) return rc;
    if ((rc = get_opt_real(r, json_object_get(s, "confidence"), 1, 0, &out->confidence, l, "confidence", err)))
        return rc;
    out->text = NULL;
    json_t *t = json_object_get(s, "text");
    if (t && !json_is_null(t)) {
        if (!json_is_string(t)) return bad_at(r, err, l, "text", "must be a string");
        if (!(r->flags & ES_READ_NO_TEXT)) out->text = json_string_value(t);
    }
    out->n_probes = *np; /* start offset until fix-up */
    return get_probes(r, json_object_get(s, "probes"), si, out->tokens, np, ns, err);
}

static int get_gold(es_trace_reader *r, json_t *g, size_t *n_gold, num_slots *ns, es_error *err)
{
    if (!g || json_is_null(g)) return bad(r, err, ES_EFORMAT, "gold", "missing (the reference answer is required)");
    size_t n = json_is_array(g) ? json_array_size(g) : 1;
    if (n == 0) return bad(r, err, ES_EFORMAT, "gold", "an empty list accepts no answer");
    if (grow((void **)&r->gold, &r->gold_cap, n, sizeof *r->gold)) return ES_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        loc l = {-1, -1, json_is_array(g) ? (long)i : -1, NULL};
        json_t *v = json_is_array(g) ? json_array_get(g, i) : g;
        int rc = get_answer(r, v, &r->gold[i], ns, 0, l, json_is_array(g) ? NULL : "gold", err);
        if (rc) return rc;
    }
    *n_gold = n;
    return ES_OK;
}

static int get_string(es_trace_reader *r, json_t *o, const char *key, int required,
                      const char **dst, es_error *err)
{
    json_t *v = json_object_get(o, key);
    *dst = NULL;
    if (!v || json_is_null(v)) {
        if (!required) return ES_OK;
        return bad(r, err, ES_EFORMAT, key, "missing");
    }
    if (!json_is_string(v)) return bad(r, err, ES_EFORMAT, key, "must be a string");
    *dst = json_string_value(v);
    return ES_OK;
}

static int get_item(es_trace_reader *r, json_t *o, es_item *item, es_error *err)
{
    num_slots ns = {0};
    int rc;
    memset(item, 0, sizeof *item);
    r->numbuf_len = 0;
    if ((rc = get_string(r, o, "id", 1, &item->id, err))) goto out;
    if ((rc = get_string(r, o, "task", 0, &item->task, err))) goto out;
    if (!item->task) item->task = "";
    if ((rc = get_string(r, o, "question", 0, &item->question, err))) goto out;
    if (r->flags & ES_READ_NO_TEXT) item->question = NULL;
    const char *type;
    if ((rc = get_string(r, o, "answer_type", 1, &type, err))) goto out;
    if (es_answer_type_parse(type, &item->answer_type)) {
        rc = bad(r, err, ES_EFORMAT, "answer_type", "must be one of text, number, date, choice, math");
        goto out;
    }
    if ((rc = get_gold(r, json_object_get(o, "gold"), &item->n_gold, &ns, err))) goto out;
    json_t *s = json_object_get(o, "samples");
    if (!json_is_array(s) || json_array_size(s) == 0) {
        rc = bad(r, err, ES_EFORMAT, "samples", s ? "must be a non-empty array" : "missing");
        goto out;
    }
    size_t n = json_array_size(s), np = 0;
    if ((rc = grow((void **)&r->samples, &r->samples_cap, n, sizeof *r->samples))) goto out;
    for (size_t i = 0; i < n; i++)
        if ((rc = get_sample(r, json_array_get(s, i), i, &np, &ns, err))) goto out;
    /* n_probes held start offsets; turn them into counts and pointers. */
    for (size_t i = 0; i < n; i++) {
        size_t begin = r->samples[i].n_probes;
        size_t end = i + 1 < n ? r->samples[i + 1].n_probes : np;
        /* r->probes is NULL until a file has probes: NULL + 0 is UB */
        r->samples[i].probes = end > begin ? r->probes + begin : NULL;
        r->samples[i].n_probes = end - begin;
    }
    for (size_t i = 0; i < ns.n; i++) *ns.v[i].slot = r->numbuf + ns.v[i].off;
    item->gold = r->gold;
    item->n_samples = n;
    item->samples = r->samples;
out:
    free(ns.v);
    return rc;
}

/* Read up to BATCH non-blank lines and parse them on all cores. */
static void fill_batch(es_trace_reader *r)
{
    int n = 0;
    while (n < BATCH) {
        line_slot *l = &r->batch[n];
        int rc = read_line(r, &l->buf, &l->cap, &l->len, &l->complete, &r->pending_err);
        if (rc == ES_EOF) { r->eof = 1; break; }
        if (rc) { r->pending_rc = rc; break; }
        if (blank(l->buf, l->len)) continue;
        l->line = r->lines_read;
        n++;
    }
#pragma omp parallel for schedule(dynamic, 4) if (n >= 16)
    for (int i = 0; i < n; i++)
        r->batch[i].json = json_loadb(r->batch[i].buf, r->batch[i].len, JSON_ALLOW_NUL, NULL);
    r->n_batch = n;
    r->pos_batch = 0;
}

int es_trace_reader_next(es_trace_reader *r, es_item *item, es_error *err)
{
    for (;;) {
        json_decref(r->cur);
        r->cur = NULL;
        if (r->pos_batch == r->n_batch) {
            if (r->n_batch < BATCH && (r->eof || r->pending_rc)) {
                if (!r->pending_rc) return ES_EOF;
                if (err) *err = r->pending_err;
                return r->pending_rc;
            }
            fill_batch(r);
            continue;
        }
        line_slot *l = &r->batch[r->pos_batch++];
        r->line = l->line;
        json_t *j = l->json;
        l->json = NULL;
        /* a line that did not parse is parsed again here, alone, for its message */
        int rc = parse_line(r, l->buf, l->len, l->complete, &j, err);
        r->cur = j;
        if (rc == ES_OK) rc = get_item(r, r->cur, item, err);
        if (rc == ES_OK || rc == ES_ENOMEM || rc == ES_EIO || !(r->flags & ES_READ_SKIP_BAD))
            return rc;
        r->skipped++;
        if (err) r->last_skip = *err;
    }
}

const char *es_trace_reader_header(const es_trace_reader *r) { return r->header; }
size_t es_trace_reader_skipped(const es_trace_reader *r) { return r->skipped; }
const es_error *es_trace_reader_last_skip(const es_trace_reader *r) { return &r->last_skip; }
long es_trace_reader_line(const es_trace_reader *r) { return r->line; }
uint64_t es_trace_reader_bytes(const es_trace_reader *r) { return r->bytes; }

int es_traceset_load(const char *path, unsigned read_flags, es_traceset **out, size_t *skipped,
                     es_error *err)
{
    es_trace_reader *r;
    *out = NULL;
    int rc = es_trace_reader_open(path, read_flags, &r, err);
    if (rc) return rc;
    es_traceset *ts = NULL;
    rc = es_traceset_new((read_flags & ES_READ_NO_TEXT) ? 0 : ES_KEEP_TEXT, &ts);
    es_item item;
    size_t set_skipped = 0;
    while (rc == ES_OK && (rc = es_trace_reader_next(r, &item, err)) == ES_OK) {
        rc = es_traceset_add(ts, &item, err);
        if (rc && err) {
            /* the set checks what a single line cannot (duplicate ids): name the line */
            snprintf(err->file, sizeof err->file, "%s", path);
            err->line = es_trace_reader_line(r);
        }
        /* a duplicate id breaks the format like a bad line does: --skip-bad
         * skips it too (the set rolled the failed add back) */
        if (rc == ES_EFORMAT && (read_flags & ES_READ_SKIP_BAD)) {
            set_skipped++;
            rc = ES_OK;
        }
    }
    if (skipped) *skipped = es_trace_reader_skipped(r) + set_skipped;
    es_trace_reader_free(r);
    if (rc != ES_EOF) {
        es_traceset_free(ts);
        return rc;
    }
    *out = ts;
    return ES_OK;
}

/* ------------------------------------------------------------------ writer */

struct es_trace_writer {
    FILE *fp;
};

/* JSON_REAL_PRECISION(15): 0.95 prints as 0.95 and reads back to the same
 * double, which makes read -> write a fixed point. */
#define DUMP_FLAGS (JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

static json_t *answer_json(const char *a) { return a ? json_string(a) : json_null(); }

static int set_new(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

static int put_real_if(json_t *o, const char *key, double x)
{
    return isnan(x) ? 0 : set_new(o, key, json_real(x));
}

static json_t *probe_json(const es_probe *p)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad_ = set_new(o, "at", json_integer(p->at)) | set_new(o, "answer", answer_json(p->answer)) |
               put_real_if(o, "confidence", p->confidence) |
               put_real_if(o, "window_confidence", p->window_confidence);
    if (p->cost >= 0) bad_ |= set_new(o, "cost", json_integer(p->cost));
    if (bad_) { json_decref(o); return NULL; }
    return o;
}

static json_t *sample_json(const es_sample *s)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad_ = set_new(o, "answer", answer_json(s->answer)) | set_new(o, "tokens", json_integer(s->tokens)) |
               put_real_if(o, "confidence", s->confidence);
    if (s->text) bad_ |= set_new(o, "text", json_string(s->text));
    if (s->n_probes) {
        json_t *a = json_array();
        bad_ |= set_new(o, "probes", a);
        for (size_t i = 0; a && i < s->n_probes; i++) bad_ |= json_array_append_new(a, probe_json(&s->probes[i]));
    }
    if (bad_) { json_decref(o); return NULL; }
    return o;
}

static json_t *item_json(const es_item *it)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad_ = set_new(o, "id", json_string(it->id ? it->id : "")) |
               set_new(o, "task", json_string(it->task ? it->task : "")) |
               set_new(o, "answer_type", json_string(es_answer_type_name(it->answer_type)));
    if (it->n_gold == 1) {
        bad_ |= set_new(o, "gold", json_string(it->gold[0] ? it->gold[0] : ""));
    } else {
        json_t *g = json_array();
        bad_ |= set_new(o, "gold", g);
        for (size_t i = 0; g && i < it->n_gold; i++) bad_ |= json_array_append_new(g, json_string(it->gold[i]));
    }
    if (it->question) bad_ |= set_new(o, "question", json_string(it->question));
    json_t *s = json_array();
    bad_ |= set_new(o, "samples", s);
    for (size_t i = 0; s && i < it->n_samples; i++) bad_ |= json_array_append_new(s, sample_json(&it->samples[i]));
    if (bad_) { json_decref(o); return NULL; }
    return o;
}

/* Write compact-but-spaced JSON followed by a newline. */
static int dump_line(FILE *fp, json_t *j, es_error *err)
{
    int rc = json_dumpf(j, fp, DUMP_FLAGS);
    if (rc == 0 && fputc('\n', fp) == EOF) rc = -1;
    if (rc) return es_error_set(err, ES_EIO, "", 0, "", "write failed: %s", strerror(errno ? errno : EIO));
    return ES_OK;
}

int es_trace_writer_open(FILE *fp, const char *header_json, es_trace_writer **out, es_error *err)
{
    *out = NULL;
    json_t *h = json_object();
    if (!h) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    json_object_set_new(h, "format", json_string("earlystop-traces"));
    json_object_set_new(h, "version", json_integer(1));
    if (header_json) {
        json_error_t je;
        json_t *extra = json_loads(header_json, 0, &je);
        if (!json_is_object(extra)) {
            json_decref(extra);
            json_decref(h);
            return es_error_set(err, ES_EINVAL, "", 0, "header", "header must be a JSON object");
        }
        const char *k;
        json_t *v;
        json_object_foreach(extra, k, v) {
            if (strcmp(k, "format") && strcmp(k, "version")) json_object_set(h, k, v);
        }
        json_decref(extra);
    }
    int rc = dump_line(fp, h, err);
    json_decref(h);
    if (rc) return rc;
    es_trace_writer *w = malloc(sizeof *w);
    if (!w) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    w->fp = fp;
    *out = w;
    return ES_OK;
}

int es_trace_writer_write(es_trace_writer *w, const es_item *item, es_error *err)
{
    if (!item->n_gold || !item->gold)
        return es_error_set(err, ES_EINVAL, "", 0, "gold", "item %s has no gold answer",
                            item->id ? item->id : "?");
    json_t *j = item_json(item);
    if (!j) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    int rc = dump_line(w->fp, j, err);
    json_decref(j);
    return rc;
}

int es_trace_writer_free(es_trace_writer *w)
{
    if (!w) return ES_OK;
    int rc = fflush(w->fp) ? ES_EIO : ES_OK;
    free(w);
    return rc;
}
