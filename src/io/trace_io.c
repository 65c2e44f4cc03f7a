/*
 * trace_io.c - trace format v1 (JSON Lines) reader and writer, on jansson.
 *
 * The reader streams: it holds a batch of lines and their parsed JSON at a
 * time, and the es_item it hands out points into that JSON, so memory stays
 * bounded by the longest lines whatever the file size (and a line longer
 * than a limit, 256 MiB by default, is an error, so /dev/zero cannot eat the
 * machine).  Every error names the file, the line and the field.  The writer
 * emits keys in one fixed order with fixed number formatting, so reading a
 * file and writing it back is a fixed point.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "grow.h"
#include "open_file.h"
#include "earlystop_io.h"

/*
 * Parallel read-ahead.  jansson is most of the reader's time and lines parse
 * independently, so the reader reads BATCH lines at a time and helper
 * threads parse them from the back of the batch while the reader's own
 * thread parses and converts them from the front, in file order.  The
 * reader never waits for a helper: a line a helper is still parsing when the
 * reader reaches it is parsed again by the reader (the helper's result is
 * dropped), and a batch a helper is still inside when the reader moves on is
 * left to that helper to free.  So on a loaded machine, where a helper may
 * not run for a while, the reader never blocks on it, and helpers sleep on a
 * condition variable (no spinning) when there is nothing to parse.  What 2
 * threads cost over 1 when they share one core is the hand-over (a parse
 * built on one core is read and freed on another): 10-20% more CPU than
 * one thread in our measurements.  Items are still handed out one at a time, in file order.
 */
enum { BATCH = 64, MIN_PARALLEL = 16, MAX_THREADS = 64, DEFAULT_THREADS = 4, IN_CAP = 1 << 16 };

/* A line taken by a helper is PENDING until the helper hands its parse over
 * (DONE) or the reader, arriving first, takes the line back (STOLEN). */
enum { LINE_PENDING = 0, LINE_DONE = 1, LINE_STOLEN = 2 };

typedef struct line_slot {
    char *buf;
    size_t cap, len;
    long line;
    int complete;
    json_t *json;           /* a helper's parse (LINE_DONE) */
    _Atomic int state;
} line_slot;

/* Lines [lo, hi) are untaken: the reader takes lo, helpers take hi - 1; both
 * live in one word so that one compare-and-swap settles who has a line. */
#define RANGE(lo, hi) ((uint64_t)(hi) << 32 | (uint32_t)(lo))

typedef struct batch {
    line_slot slot[BATCH];
    int n, pos;             /* lines read; the reader's next line */
    _Atomic uint64_t range;
    _Atomic int refs;       /* the reader's 1, plus each helper working in it;
                               whoever drops the last frees it */
} batch;

typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t work;    /* helpers sleep here until a batch has lines left */
    pthread_t tid[MAX_THREADS];
    int n_threads, quit;
    batch *cur;             /* the batch helpers may take lines from, or NULL */
} pool;

struct es_trace_reader {
    FILE *fp;
    int own_fp;
    unsigned flags;
    uint64_t max_line;
    int threads;            /* parsing threads wanted, the reader's included */
    char path[256];
    long line;              /* line of the item being read (for errors) */
    long lines_read;        /* lines consumed from the file, read-ahead included */
    uint64_t bytes;
    char *in;               /* raw input buffer: in[in_pos, in_len) unread */
    size_t in_pos, in_len;
    int in_eof;
    char *buf;              /* the header line */
    size_t buf_cap;
    batch *b;               /* the batch being handed out */
    pool *pool;             /* helpers, started with the first big batch */
    int eof;
    int pending_rc;         /* an error met while reading ahead */
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
    es_error reasons[ES_READ_REASONS]; /* the first skipped items' errors */
};

/* Fail for the current line with a field-level message. */
static int bad(es_trace_reader *r, es_error *err, int code, const char *field, const char *msg)
{
    return es_error_set(err, code, r->path, r->line, field, "%s", msg);
}

/* "256 MiB" for messages about the line limit. */
static void size_name(uint64_t n, char *buf, size_t cap)
{
    if (n >= (1u << 30) && n % (1u << 30) == 0) snprintf(buf, cap, "%llu GiB", (unsigned long long)(n >> 30));
    else if (n >= (1u << 20) && n % (1u << 20) == 0) snprintf(buf, cap, "%llu MiB", (unsigned long long)(n >> 20));
    else if (n >= (1u << 10) && n % (1u << 10) == 0) snprintf(buf, cap, "%llu KiB", (unsigned long long)(n >> 10));
    else snprintf(buf, cap, "%llu bytes", (unsigned long long)n);
}

/* Refill the raw input buffer; ES_EOF when the file is done. */
static int refill(es_trace_reader *r, es_error *err)
{
    if (r->in_eof) return ES_EOF;
    errno = 0;
    size_t n = fread(r->in, 1, IN_CAP, r->fp);
    if (n == 0) {
        if (ferror(r->fp))
            return es_error_set(err, ES_EIO, r->path, r->lines_read + 1, "", "read failed: %s",
                                strerror(errno ? errno : EIO));
        r->in_eof = 1;
        return ES_EOF;
    }
    r->in_pos = 0;
    r->in_len = n;
    return ES_OK;
}

/* Read one raw line (without its newline, NUL-terminated) into *buf; ES_EOF
 * at the end.  *complete is 0 when the file ended without a newline (a
 * truncated line).  A line longer than max_line is an error, found before it
 * is held in memory; so is a NUL byte (JSON text has none: the input is
 * binary) unless the line may be skipped (stop_at_nul 0), in which case the
 * parse names it. */
static int read_line(es_trace_reader *r, char **buf, size_t *cap, size_t *len, int *complete, int stop_at_nul,
                     es_error *err)
{
    size_t n = 0;
    int nl = 0;
    for (;;) {
        if (r->in_pos == r->in_len) {
            int rc = refill(r, err);
            if (rc == ES_EOF) break;
            if (rc) return rc;
        }
        const char *start = r->in + r->in_pos;
        size_t avail = r->in_len - r->in_pos;
        const char *end = memchr(start, '\n', avail);
        size_t take = end ? (size_t)(end - start) + 1 : avail;
        if ((uint64_t)(n + take - (end ? 1 : 0)) > r->max_line) {
            char lim[32];
            size_name(r->max_line, lim, sizeof lim);
            return es_error_set(err, ES_ERANGE, r->path, r->lines_read + 1, "",
                                "line longer than the limit of %s (raise it with --max-line): not a trace file?", lim);
        }
        if (stop_at_nul) {
            const char *z = memchr(start, '\0', take);
            if (z)
                return es_error_set(err, ES_EPARSE, r->path, r->lines_read + 1, "",
                                    "a NUL byte at column %zu: binary data, not JSON text",
                                    n + (size_t)(z - start) + 1);
        }
        if (es_grow((void **)buf, cap, n + take + 1, 1))
            return es_error_set(err, ES_ENOMEM, r->path, r->lines_read + 1, "", "out of memory");
        memcpy(*buf + n, start, take);
        n += take;
        r->in_pos += take;
        if (end) { nl = 1; break; }
    }
    if (n == 0) return ES_EOF;
    r->lines_read++;
    r->bytes += (uint64_t)n;
    char *b = *buf;
    *complete = nl;
    if (nl) n--;
    if (n > 0 && b[n - 1] == '\r') n--;
    b[n] = '\0';
    *len = n;
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
 * (from the parallel read-ahead), else it is parsed here.  A failure says
 * what is wrong in terms a user can act on: a NUL byte, truncation when the
 * file ended mid-line, else jansson's message with the column. */
static int parse_line(es_trace_reader *r, const char *buf, size_t len, int complete, json_t **out,
                      es_error *err)
{
    json_error_t je;
    json_t *j = *out ? *out : json_loadb(buf, len, JSON_ALLOW_NUL, &je);
    *out = NULL;
    if (!j) {
        const char *z = memchr(buf, '\0', len);
        if (z)
            return es_error_set(err, ES_EPARSE, r->path, r->line, "",
                                "a NUL byte at column %zu: binary data, not JSON text", (size_t)(z - buf) + 1);
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

/* Compressed input reads as binary noise: name it from its magic bytes.
 * A UTF-8 byte order mark (some Windows tools write one) is skipped. */
static int sniff(es_trace_reader *r, es_error *err)
{
    int rc = refill(r, err);
    if (rc) return rc == ES_EOF ? ES_OK : rc;
    const unsigned char *p = (const unsigned char *)r->in;
    size_t n = r->in_len;
    static const struct { const char *magic; size_t len; const char *what, *tool; } kinds[] = {
        {"\x1f\x8b", 2, "gzip", "gunzip, or zcat FILE | earlystop ... -"},
        {"\x28\xb5\x2f\xfd", 4, "zstd", "unzstd, or zstdcat FILE | earlystop ... -"},
        {"\xfd" "7zXZ", 5, "xz", "unxz, or xzcat FILE | earlystop ... -"},
        {"BZh", 3, "bzip2", "bunzip2, or bzcat FILE | earlystop ... -"},
        {"PK\x03\x04", 4, "zip", "unzip"},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (n >= kinds[i].len && !memcmp(p, kinds[i].magic, kinds[i].len))
            return es_error_set(err, ES_EFORMAT, r->path, 0, "", "%s-compressed input: decompress it first (%s)",
                                kinds[i].what, kinds[i].tool);
    if (n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
        r->in_pos = 3;
        r->bytes += 3;
    }
    return ES_OK;
}

static batch *batch_new(void)
{
    batch *b = calloc(1, sizeof *b);
    if (b) atomic_init(&b->refs, 1);
    return b;
}

void es_read_opts_init(es_read_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_line = ES_READ_MAX_LINE;
}

/* The default thread count: one per online core, at most DEFAULT_THREADS
 * (the reader's own thread converts and hands out every item, so more
 * helpers than that only wait). */
static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > DEFAULT_THREADS ? DEFAULT_THREADS : (int)n;
}

int es_trace_reader_open_opts(const char *path, const es_read_opts *opts, es_trace_reader **out, es_error *err)
{
    *out = NULL;
    es_read_opts def;
    if (!opts) {
        es_read_opts_init(&def);
        opts = &def;
    }
    es_trace_reader *r = calloc(1, sizeof *r);
    if (r) r->in = malloc(IN_CAP);
    if (r) r->b = batch_new();
    if (!r || !r->in || !r->b) {
        es_trace_reader_free(r);
        return es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    r->flags = opts->flags;
    r->max_line = opts->max_line ? opts->max_line : ES_READ_MAX_LINE;
    r->threads = opts->threads > 0 ? (opts->threads > MAX_THREADS ? MAX_THREADS : opts->threads) : default_threads();
    if (!strcmp(path, "-")) {
        r->fp = stdin;
    } else {
        int rc = es_open_input(path, "a trace file", &r->fp, err);
        r->own_fp = 1;
        if (rc) {
            es_trace_reader_free(r);
            return rc;
        }
    }
    size_t len = 0;
    int complete = 0, rc = sniff(r, err);
    while (rc == ES_OK) {
        rc = read_line(r, &r->buf, &r->buf_cap, &len, &complete, 1, err);
        r->line = r->lines_read;
        if (rc || !blank(r->buf, len)) break;
    }
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

int es_trace_reader_open(const char *path, unsigned flags, es_trace_reader **out, es_error *err)
{
    es_read_opts o;
    es_read_opts_init(&o);
    o.flags = flags;
    return es_trace_reader_open_opts(path, &o, out, err);
}

static void batch_free(batch *b)
{
    if (!b) return;
    for (int i = 0; i < BATCH; i++) {
        json_decref(b->slot[i].json);
        free(b->slot[i].buf);
    }
    free(b);
}

static void pool_stop(pool *p);

void es_trace_reader_free(es_trace_reader *r)
{
    if (!r) return;
    pool_stop(r->pool); /* helpers finish their line and free what they orphaned */
    if (r->own_fp && r->fp) fclose(r->fp);
    json_decref(r->cur);
    batch_free(r->b);
    free(r->in);
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
    if (es_grow((void **)&r->numbuf, &r->numbuf_cap, r->numbuf_len + (size_t)n + 1, 1)) return ES_ENOMEM;
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

/* 1 when a JSON string holds a NUL character ("\u0000").  Strings are
 * compared and hashed as C strings from here on, so "a\u0000b" would equal
 * "a\u0000c" (and two ids would collide): such strings are refused. */
static int has_nul(json_t *v)
{
    return strlen(json_string_value(v)) != json_string_length(v);
}

static const char nul_msg[] = "contains a NUL character (\\u0000), which trace files do not allow";

/* An answer-like value: string, null, or number (kept as its text). */
static int get_answer(es_trace_reader *r, json_t *v, const char **dst, num_slots *ns,
                      int allow_null, loc l, const char *key, es_error *err)
{
    if (json_is_string(v)) {
        if (has_nul(v)) return bad_at(r, err, l, key, nul_msg);
        *dst = json_string_value(v);
        return ES_OK;
    }
    if (allow_null && json_is_null(v)) { *dst = NULL; return ES_OK; }
    if (json_is_number(v)) {
        size_t off;
        if (stash_number(r, v, &off)) return ES_ENOMEM;
        if (es_grow((void **)&ns->v, &ns->cap, ns->n + 1, sizeof *ns->v)) return ES_ENOMEM;
        ns->v[ns->n++] = (num_slot){dst, off};
        *dst = NULL;
        return ES_OK;
    }
    return bad_at(r, err, l, key,
                  allow_null ? "must be a string, a number or null" : "must be a string or a number");
}

/* A non-negative integer that fits uint32; the message says which of the
 * three it broke (a count of 2^32 is too large, not negative). */
static int get_count(es_trace_reader *r, json_t *v, uint32_t *dst, loc l, const char *key, es_error *err)
{
    if (!v) return bad_at(r, err, l, key, "missing (a non-negative integer is required)");
    char msg[128];
    if (json_is_real(v)) {
        snprintf(msg, sizeof msg, "must be a non-negative integer, got %.17g", json_real_value(v));
        return bad_at(r, err, l, key, msg);
    }
    if (!json_is_integer(v)) return bad_at(r, err, l, key, "must be a non-negative integer");
    json_int_t x = json_integer_value(v);
    if (x < 0) {
        snprintf(msg, sizeof msg, "must be a non-negative integer, got %" JSON_INTEGER_FORMAT, x);
        return bad_at(r, err, l, key, msg);
    }
    if (x > UINT32_MAX) {
        snprintf(msg, sizeof msg, "must be a non-negative integer of at most %lu (2^32 - 1), got %" JSON_INTEGER_FORMAT,
                 (unsigned long)UINT32_MAX, x);
        return bad_at(r, err, l, key, msg);
    }
    *dst = (uint32_t)x;
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

/* The probe's text cues (docs/trace-format.md): a list of names; present,
 * even empty, it says the cues were read (ES_CUE_READ). */
static const struct {
    const char *name;
    uint32_t bit;
} cue_names[] = {{"conclude", ES_CUE_CONCLUDE}, {"check", ES_CUE_CHECK}, {"end", ES_CUE_END}};

static int get_cues(es_trace_reader *r, json_t *v, uint32_t *out, loc l, es_error *err)
{
    *out = 0;
    if (!v || json_is_null(v)) return ES_OK;
    if (!json_is_array(v)) return bad_at(r, err, l, "cues", "must be a list of names (conclude, check, end)");
    *out = ES_CUE_READ;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *s = json_string_value(json_array_get(v, i));
        size_t k = 0;
        while (s && k < sizeof cue_names / sizeof cue_names[0] && strcmp(s, cue_names[k].name)) k++;
        if (!s || k == sizeof cue_names / sizeof cue_names[0])
            return bad_at(r, err, l, "cues", "unknown cue (the names are conclude, check, end)");
        *out |= cue_names[k].bit;
    }
    return ES_OK;
}

static json_t *cues_json(uint32_t cues)
{
    json_t *a = json_array();
    for (size_t k = 0; a && k < sizeof cue_names / sizeof cue_names[0]; k++)
        if ((cues & cue_names[k].bit) && json_array_append_new(a, json_string(cue_names[k].name))) {
            json_decref(a);
            return NULL;
        }
    return a;
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
    return get_cues(r, json_object_get(p, "cues"), &out->cues, l, err);
}

/* Probes of sample si go to r->probes[*np ...]; offsets fixed up later. */
static int get_probes(es_trace_reader *r, json_t *arr, size_t si, uint32_t tokens, size_t *np,
                      num_slots *ns, es_error *err)
{
    loc l = {(long)si, -1, -1, NULL};
    if (!arr || json_is_null(arr)) return ES_OK;
    if (!json_is_array(arr)) return bad_at(r, err, l, "probes", "must be an array");
    size_t n = json_array_size(arr);
    if (es_grow((void **)&r->probes, &r->probes_cap, *np + n, sizeof *r->probes)) return ES_ENOMEM;
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
        if (!(r->flags & ES_READ_NO_TEXT)) {
            if (has_nul(t)) return bad_at(r, err, l, "text", nul_msg);
            out->text = json_string_value(t);
        }
    }
    out->n_probes = *np; /* start offset until fix-up */
    return get_probes(r, json_object_get(s, "probes"), si, out->tokens, np, ns, err);
}

static int get_gold(es_trace_reader *r, json_t *g, size_t *n_gold, num_slots *ns, es_error *err)
{
    if (!g || json_is_null(g)) return bad(r, err, ES_EFORMAT, "gold", "missing (the reference answer is required)");
    size_t n = json_is_array(g) ? json_array_size(g) : 1;
    if (n == 0) return bad(r, err, ES_EFORMAT, "gold", "an empty list accepts no answer");
    if (es_grow((void **)&r->gold, &r->gold_cap, n, sizeof *r->gold)) return ES_ENOMEM;
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
    /* the question is dropped unread with ES_READ_NO_TEXT */
    if (has_nul(v) && !(!strcmp(key, "question") && (r->flags & ES_READ_NO_TEXT)))
        return bad(r, err, ES_EFORMAT, key, nul_msg);
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
    if ((rc = es_grow((void **)&r->samples, &r->samples_cap, n, sizeof *r->samples))) goto out;
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

/* ------------------------------------------------------ parallel read-ahead */

static json_t *parse_json(const line_slot *l)
{
    return json_loadb(l->buf, l->len, JSON_ALLOW_NUL, NULL);
}

/* Take the last untaken line of b for a helper: its index, or -1. */
static int helper_claim(batch *b)
{
    uint64_t v = atomic_load(&b->range);
    for (;;) {
        uint32_t lo = (uint32_t)v, hi = (uint32_t)(v >> 32);
        if (hi <= lo) return -1;
        if (atomic_compare_exchange_weak(&b->range, &v, RANGE(lo, hi - 1))) return (int)hi - 1;
    }
}

/* 1 when the reader took line b->pos itself (it was untaken). */
static int reader_claim(batch *b)
{
    uint64_t v = atomic_load(&b->range);
    for (;;) {
        uint32_t lo = (uint32_t)v, hi = (uint32_t)(v >> 32);
        if (hi <= lo) return 0;
        if (atomic_compare_exchange_weak(&b->range, &v, RANGE(lo + 1, hi))) return 1;
    }
}

static int has_work(batch *b)
{
    uint64_t v = atomic_load(&b->range);
    return (uint32_t)(v >> 32) > (uint32_t)v;
}

/* A helper: join the current batch (the pool's lock, once per batch), take
 * lines from its back and parse them without any lock, hand each parse over
 * (or drop it when the reader took the line back), leave the batch, and
 * sleep when there is nothing to take. */
static void *helper_main(void *arg)
{
    pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && !(p->cur && has_work(p->cur))) pthread_cond_wait(&p->work, &p->mu);
        if (p->quit) break;
        batch *b = p->cur;
        atomic_fetch_add(&b->refs, 1);
        pthread_mutex_unlock(&p->mu);
        int i;
        while ((i = helper_claim(b)) >= 0) {
            line_slot *l = &b->slot[i];
            l->json = parse_json(l);
            int want = LINE_PENDING;
            if (!atomic_compare_exchange_strong(&l->state, &want, LINE_DONE)) {
                json_decref(l->json); /* the reader parsed it itself */
                l->json = NULL;
            }
        }
        if (atomic_fetch_sub(&b->refs, 1) == 1) batch_free(b); /* the reader left it to us */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Start threads-1 helpers; fewer (or none) when the system refuses. */
static pool *pool_start(int threads)
{
    pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (pthread_mutex_init(&p->mu, NULL)) { free(p); return NULL; }
    if (pthread_cond_init(&p->work, NULL)) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    for (int i = 0; i < threads - 1 && i < MAX_THREADS; i++) {
        if (pthread_create(&p->tid[i], NULL, helper_main, p)) break;
        p->n_threads++;
    }
    return p;
}

static void pool_stop(pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* The reader is done with its batch: reuse it, or when a helper is still
 * parsing one of its lines, leave it to that helper and start a new one. */
static int retire_batch(es_trace_reader *r)
{
    batch *b = r->b;
    if (r->pool) {
        pthread_mutex_lock(&r->pool->mu);
        r->pool->cur = NULL; /* no helper joins it from now on */
        pthread_mutex_unlock(&r->pool->mu);
        if (atomic_fetch_sub(&b->refs, 1) != 1) {
            r->b = batch_new(); /* the last helper out frees b */
            return r->b ? ES_OK : ES_ENOMEM;
        }
        atomic_store(&b->refs, 1);
    }
    for (int i = 0; i < b->n; i++) {
        json_decref(b->slot[i].json);
        b->slot[i].json = NULL;
        atomic_store(&b->slot[i].state, LINE_PENDING);
    }
    b->n = b->pos = 0;
    atomic_store(&b->range, 0);
    return ES_OK;
}

/* Read up to BATCH non-blank lines and offer them to the helpers. */
static int fill_batch(es_trace_reader *r, es_error *err)
{
    if (retire_batch(r)) return es_error_set(err, ES_ENOMEM, r->path, 0, "", "out of memory");
    batch *b = r->b;
    int n = 0, stop_at_nul = !(r->flags & ES_READ_SKIP_BAD);
    while (n < BATCH) {
        line_slot *l = &b->slot[n];
        int rc = read_line(r, &l->buf, &l->cap, &l->len, &l->complete, stop_at_nul, &r->pending_err);
        if (rc == ES_EOF) { r->eof = 1; break; }
        if (rc) { r->pending_rc = rc; break; }
        if (blank(l->buf, l->len)) continue;
        l->line = r->lines_read;
        n++;
    }
    b->n = n;
    b->pos = 0;
    atomic_store(&b->range, RANGE(0, n));
    if (r->threads > 1 && n >= MIN_PARALLEL && !r->pool) r->pool = pool_start(r->threads);
    if (r->pool && n >= MIN_PARALLEL) {
        pthread_mutex_lock(&r->pool->mu);
        r->pool->cur = b;
        pthread_cond_broadcast(&r->pool->work);
        pthread_mutex_unlock(&r->pool->mu);
    }
    return ES_OK;
}

/* The parse of the batch's next line, in file order: a helper's when it is
 * done, else parsed here (also when a helper is still at it: never wait). */
static json_t *take_line(es_trace_reader *r, line_slot **out)
{
    batch *b = r->b;
    line_slot *l = &b->slot[b->pos++];
    *out = l;
    if (!r->pool || reader_claim(b)) return parse_json(l);
    int want = LINE_PENDING;
    if (atomic_compare_exchange_strong(&l->state, &want, LINE_STOLEN)) return parse_json(l);
    json_t *j = l->json; /* LINE_DONE */
    l->json = NULL;
    return j;
}

int es_trace_reader_next(es_trace_reader *r, es_item *item, es_error *err)
{
    es_error local;
    if (!err) err = &local; /* skipped items keep their reasons */
    for (;;) {
        json_decref(r->cur);
        r->cur = NULL;
        if (r->b->pos == r->b->n) {
            if (r->b->n < BATCH && (r->eof || r->pending_rc)) {
                if (!r->pending_rc) return ES_EOF;
                if (err) *err = r->pending_err;
                return r->pending_rc;
            }
            int rc = fill_batch(r, err);
            if (rc) return rc;
            continue;
        }
        line_slot *l;
        json_t *j = take_line(r, &l);
        r->line = l->line;
        /* a line that did not parse is parsed again here, alone, for its message */
        int rc = parse_line(r, l->buf, l->len, l->complete, &j, err);
        r->cur = j;
        if (rc == ES_OK) rc = get_item(r, r->cur, item, err);
        if (rc == ES_OK || rc == ES_ENOMEM || rc == ES_EIO || rc == ES_ERANGE || !(r->flags & ES_READ_SKIP_BAD))
            return rc;
        if (r->skipped < ES_READ_REASONS) r->reasons[r->skipped] = *err;
        r->last_skip = *err;
        r->skipped++;
    }
}

const char *es_trace_reader_header(const es_trace_reader *r) { return r->header; }
size_t es_trace_reader_skipped(const es_trace_reader *r) { return r->skipped; }
const es_error *es_trace_reader_last_skip(const es_trace_reader *r) { return &r->last_skip; }
const es_error *es_trace_reader_skip_reason(const es_trace_reader *r, size_t i)
{
    return i < r->skipped && i < ES_READ_REASONS ? &r->reasons[i] : NULL;
}
long es_trace_reader_line(const es_trace_reader *r) { return r->line; }
uint64_t es_trace_reader_bytes(const es_trace_reader *r) { return r->bytes; }

/* Keep the first ES_READ_REASONS reasons of a load's skips, in file order. */
static void report_skip(es_read_report *rep, const es_error *e)
{
    if (rep->n_reasons < ES_READ_REASONS) rep->reasons[rep->n_reasons++] = *e;
    rep->skipped++;
}

int es_traceset_load_opts(const char *path, const es_read_opts *opts, es_traceset **out, es_read_report *rep,
                          es_error *err)
{
    es_trace_reader *r;
    es_read_report local;
    es_error e = {0};
    es_read_opts def;
    if (!opts) {
        es_read_opts_init(&def);
        opts = &def;
    }
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    *out = NULL;
    /* skips are collected in file order from the reader and the set */
    es_read_opts ro = *opts;
    if (opts->on_item) ro.flags &= ~(unsigned)ES_READ_NO_TEXT; /* the hook sees the texts the set drops */
    int rc = es_trace_reader_open_opts(path, &ro, &r, err);
    if (rc) return rc;
    es_traceset *ts = NULL;
    rc = es_traceset_new((opts->flags & ES_READ_NO_TEXT) ? 0 : ES_KEEP_TEXT, &ts);
    es_item item;
    size_t seen = 0;
    while (rc == ES_OK && (rc = es_trace_reader_next(r, &item, &e)) == ES_OK) {
        /* skips the reader made since the last item, in order */
        for (; seen < es_trace_reader_skipped(r); seen++) {
            const es_error *s = es_trace_reader_skip_reason(r, seen);
            if (s) report_skip(rep, s);
            else rep->skipped++;
        }
        rc = es_traceset_add(ts, &item, &e);
        if (rc) {
            /* the set checks what a single line cannot (duplicate ids): name the line */
            snprintf(e.file, sizeof e.file, "%s", path);
            e.line = es_trace_reader_line(r);
        }
        /* a duplicate id breaks the format like a bad line does: --skip-bad
         * skips it too (the set rolled the failed add back) */
        if (rc == ES_EFORMAT && (opts->flags & ES_READ_SKIP_BAD)) {
            report_skip(rep, &e);
            rc = ES_OK;
        } else if (rc == ES_OK && opts->on_item && (rc = opts->on_item(opts->on_item_ctx, &item))) {
            es_error_set(&e, rc, path, es_trace_reader_line(r), "", "%s", es_strerror(rc));
        }
    }
    for (; seen < es_trace_reader_skipped(r); seen++) {
        const es_error *s = es_trace_reader_skip_reason(r, seen);
        if (s) report_skip(rep, s);
        else rep->skipped++;
    }
    es_trace_reader_free(r);
    if (rc != ES_EOF) {
        if (err) *err = e;
        es_traceset_free(ts);
        return rc;
    }
    *out = ts;
    return ES_OK;
}

int es_traceset_load(const char *path, unsigned read_flags, es_traceset **out, size_t *skipped, es_error *err)
{
    es_read_opts o;
    es_read_report rep;
    es_read_opts_init(&o);
    o.flags = read_flags;
    int rc = es_traceset_load_opts(path, &o, out, &rep, err);
    if (skipped) *skipped = rc ? 0 : rep.skipped;
    return rc;
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
    if (p->cues & ES_CUE_READ) bad_ |= set_new(o, "cues", cues_json(p->cues));
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
