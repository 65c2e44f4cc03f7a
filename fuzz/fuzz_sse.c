/*
 * fuzz_sse.c - libFuzzer target for the reader of upstream event streams
 * (es_sse_reader), then for what the proxy does with each event
 * (es_sv_sample's chunk parser through a sample fed the same bytes).
 *
 * Checks: feeding the stream whole or cut at any two points gives the same
 * events (the reader keeps no state that depends on where reads end), no
 * event is longer than the limit, and a limit breach is ES_ERANGE.
 *
 * Input layout: bytes 0-1 = the two cut points (mod the size), then the stream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop_serve.h"
#include "serve/sv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct evlog {
    es_sv_buf b;
    size_t max;
} evlog;

static int on_event(void *ctx, const char *event, const char *d, size_t len)
{
    evlog *l = ctx;
    if (len > l->max || strlen(event) > 64) abort();
    es_sv_buf_add(&l->b, event, strlen(event));
    es_sv_buf_add(&l->b, "\x01", 1);
    es_sv_buf_add(&l->b, d, len);
    es_sv_buf_add(&l->b, "\x02", 1);
    /* what the proxy does next: the event's JSON */
    json_t *v = json_loadb(d, len, 0, NULL);
    json_decref(v);
    return 0;
}

static int feed(const char *s, size_t n, size_t a, size_t b, evlog *l)
{
    es_sse_reader *r;
    if (es_sse_reader_new(l->max, &r)) abort();
    int rc = es_sse_reader_feed(r, s, a, on_event, l);
    if (!rc) rc = es_sse_reader_feed(r, s + a, b - a, on_event, l);
    if (!rc) rc = es_sse_reader_feed(r, s + b, n - b, on_event, l);
    es_sse_reader_free(r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 16) return 0;
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    size_t a = n ? data[0] % (n + 1) : 0, b = n ? data[1] % (n + 1) : 0;
    if (a > b) {
        size_t t = a;
        a = b;
        b = t;
    }
    evlog whole = {{0}, 256}, cut = {{0}, 256};
    int r1 = feed(s, n, n, n, &whole);
    int r2 = feed(s, n, a, b, &cut);
    if (r1 != r2) abort();
    if (r1 && r1 != ES_ERANGE) abort();
    /* before a breach, the same events */
    if (!r1 && (whole.b.n != cut.b.n || (whole.b.n && memcmp(whole.b.p, cut.b.p, whole.b.n)))) abort();
    es_sv_buf_free(&whole.b);
    es_sv_buf_free(&cut.b);
    return 0;
}
