/* sse.c - an incremental text/event-stream reader (WHATWG "interpreting an
 * event stream"), the proxy's and the recorder's view of an upstream's
 * streamed answer.  Bytes come in pieces cut anywhere (inside a line, between
 * a CR and its LF); events go out whole.  Memory is bounded: an event larger
 * than the limit is refused rather than buffered without end. */
#include <stdlib.h>
#include <string.h>

#include "sv.h"

struct es_sse_reader {
    size_t max_event;
    es_sv_buf line;      /* the line being read */
    es_sv_buf data;      /* the event's data lines, each followed by LF */
    es_sv_buf event;     /* its "event:" name */
    int last_cr;         /* the previous piece ended in CR: a leading LF belongs to it */
    int started;         /* past a leading byte-order mark */
};

int es_sse_reader_new(size_t max_event, es_sse_reader **out)
{
    *out = NULL;
    if (max_event < 16) return ES_EINVAL;
    es_sse_reader *r = calloc(1, sizeof *r);
    if (!r) return ES_ENOMEM;
    r->max_event = max_event;
    *out = r;
    return ES_OK;
}

void es_sse_reader_free(es_sse_reader *r)
{
    if (!r) return;
    es_sv_buf_free(&r->line);
    es_sv_buf_free(&r->data);
    es_sv_buf_free(&r->event);
    free(r);
}

size_t es_sse_reader_pending(const es_sse_reader *r) { return r->line.n + r->data.n; }

/* A blank line: the event goes out (when it has data), then a new one. */
static int dispatch(es_sse_reader *r, es_sse_fn fn, void *ctx)
{
    int rc = 0;
    if (r->data.n) {
        r->data.n--; /* the LF after the last data line */
        r->data.p[r->data.n] = '\0';
        rc = fn(ctx, r->event.p ? r->event.p : "", r->data.p, r->data.n);
    }
    es_sv_buf_reset(&r->data);
    es_sv_buf_reset(&r->event);
    return rc;
}

/* One complete line: a field of the event, a comment, or its end. */
static int process_line(es_sse_reader *r, es_sse_fn fn, void *ctx)
{
    const char *l = r->line.p ? r->line.p : "";
    size_t n = r->line.n;
    if (n == 0) return dispatch(r, fn, ctx);
    if (l[0] == ':') return 0;
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vl = (size_t)(l + n - v);
    if (vl && *v == ' ') v++, vl--;
    if (fl == 4 && !memcmp(l, "data", 4)) {
        if (r->data.n + vl + 1 > r->max_event) return ES_ERANGE;
        if (es_sv_buf_add(&r->data, v, vl) || es_sv_buf_add(&r->data, "\n", 1)) return ES_ENOMEM;
    } else if (fl == 5 && !memcmp(l, "event", 5)) {
        es_sv_buf_reset(&r->event);
        if (es_sv_buf_add(&r->event, v, vl < 64 ? vl : 64)) return ES_ENOMEM;
    }
    /* id, retry and unknown fields do not matter here */
    return 0;
}

int es_sse_reader_feed(es_sse_reader *r, const char *buf, size_t n, es_sse_fn fn, void *ctx)
{
    const char *p = buf, *end = buf + n;
    if (!r->started && p < end) {
        static const char bom[] = "\xEF\xBB\xBF";
        size_t have = r->line.n, k = 0;
        while (have + k < 3 && p + k < end && p[k] == bom[have + k]) k++;
        if (have + k == 3) {
            es_sv_buf_reset(&r->line);
            p += k;
            r->started = 1;
        } else if (p + k == end && have + k < 3) {
            return es_sv_buf_add(&r->line, p, k); /* maybe a BOM split across pieces */
        } else {
            r->started = 1;
        }
    }
    if (p == end) return 0; /* an empty piece leaves a pending CR pending */
    if (r->last_cr && *p == '\n') p++;
    r->last_cr = 0;
    while (p < end) {
        const char *q = p;
        while (q < end && *q != '\n' && *q != '\r') q++;
        if (r->line.n + (size_t)(q - p) > r->max_event) return ES_ERANGE;
        if (es_sv_buf_add(&r->line, p, (size_t)(q - p))) return ES_ENOMEM;
        if (q == end) break;
        int rc = process_line(r, fn, ctx);
        es_sv_buf_reset(&r->line);
        if (rc) return rc;
        if (*q == '\r') {
            if (q + 1 == end) r->last_cr = 1;
            else if (q[1] == '\n') q++;
        }
        p = q + 1;
    }
    return 0;
}
