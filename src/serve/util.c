/* util.c - the serve layer's small pieces: byte buffers, JSON text, the
 * clock, constant-time key checks, request ids, Prometheus text. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sv.h"

/* Doubling growth, so appending chunk after chunk stays linear. */
int es_sv_buf_reserve(es_sv_buf *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap) return ES_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) {
        if (cap > SIZE_MAX / 2) return ES_ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return ES_ENOMEM;
    b->p = p;
    b->cap = cap;
    return ES_OK;
}

int es_sv_buf_add(es_sv_buf *b, const void *data, size_t n)
{
    if (es_sv_buf_reserve(b, n)) return ES_ENOMEM;
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return ES_OK;
}

int es_sv_buf_str(es_sv_buf *b, const char *s) { return es_sv_buf_add(b, s, strlen(s)); }

int es_sv_buf_printf(es_sv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || es_sv_buf_reserve(b, (size_t)n)) return ES_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
    return ES_OK;
}

/* A reader that has taken everything leaves an empty buffer (no move). */
void es_sv_buf_consume(es_sv_buf *b, size_t n)
{
    if (n >= b->n) {
        b->n = 0;
        if (b->p) b->p[0] = '\0';
        return;
    }
    memmove(b->p, b->p + n, b->n - n);
    b->n -= n;
    b->p[b->n] = '\0';
}

void es_sv_buf_reset(es_sv_buf *b)
{
    b->n = 0;
    if (b->p) b->p[0] = '\0';
}

void es_sv_buf_free(es_sv_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int dump_cb(const char *buf, size_t size, void *data) { return es_sv_buf_add(data, buf, size) ? -1 : 0; }

int es_sv_buf_json(es_sv_buf *b, const json_t *v)
{
    return json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_REAL_PRECISION(9)) ? ES_ENOMEM : ES_OK;
}

int es_sv_buf_sse(es_sv_buf *b, const json_t *v)
{
    if (es_sv_buf_str(b, "data: ") || es_sv_buf_json(b, v) || es_sv_buf_str(b, "\n\n")) return ES_ENOMEM;
    return ES_OK;
}

double es_sv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Every byte is compared whatever the first difference, so the time taken
 * does not tell an attacker how much of a guess was right. */
int es_sv_auth_ok(const char *authorization, const char *key)
{
    if (!key || !*key) return 1;
    if (!authorization) return 0;
    static const char bearer[] = "Bearer ";
    if (strncasecmp(authorization, bearer, sizeof bearer - 1)) return 0;
    const char *got = authorization + sizeof bearer - 1;
    while (*got == ' ') got++;
    size_t n = strlen(got), k = strlen(key);
    unsigned diff = (unsigned)(n != k);
    for (size_t i = 0; i < k; i++) diff |= (unsigned)(unsigned char)key[i] ^ (unsigned)(unsigned char)(i < n ? got[i] : 0);
    return diff == 0;
}

/* Unique within a process and unlikely to repeat across restarts. */
void es_sv_request_id(char *out, size_t cap, const char *prefix, uint64_t n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^ (n * 0x9E3779B97F4A7C15ULL);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 29;
    snprintf(out, cap, "%s-%016llx", prefix, (unsigned long long)x);
}

json_t *es_sv_error_json(const char *type, const char *param, const char *message, const char *code)
{
    return json_pack("{s:{s:s,s:s,s:s?,s:s?}}", "error", "message", message, "type", type, "param",
                     param && *param ? param : NULL, "code", code);
}

/* ------------------------------------------------------------- metrics */

/* 1 ms .. 60 s: per-chunk delays at the low end, whole requests at the top. */
const double es_sv_hist_bounds[ES_SV_HIST_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,   0.5,   1,      2.5,   5,    10,    30,    60};

void es_sv_hist_add(es_sv_hist *h, double seconds)
{
    h->count++;
    h->sum += seconds;
    for (int i = 0; i < ES_SV_HIST_BUCKETS; i++)
        if (seconds <= es_sv_hist_bounds[i]) h->bucket[i]++;
}

void es_sv_hist_print(es_sv_buf *b, const char *name, const char *help, const char *labels, const es_sv_hist *h)
{
    es_sv_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    const char *sep = labels && *labels ? "," : "";
    for (int i = 0; i < ES_SV_HIST_BUCKETS; i++)
        es_sv_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels ? labels : "", sep, es_sv_hist_bounds[i],
                         (unsigned long long)h->bucket[i]);
    es_sv_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels ? labels : "", sep,
                     (unsigned long long)h->count);
    es_sv_buf_printf(b, "%s_sum%s%s%s %.6f\n", name, labels && *labels ? "{" : "", labels ? labels : "",
                     labels && *labels ? "}" : "", h->sum);
    es_sv_buf_printf(b, "%s_count%s%s%s %llu\n", name, labels && *labels ? "{" : "", labels ? labels : "",
                     labels && *labels ? "}" : "", (unsigned long long)h->count);
}

void es_sv_metric(es_sv_buf *b, const char *name, const char *type, const char *help, const char *labels,
                  double value)
{
    if (help) es_sv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    /* counts exactly, parameters as written (0.95, not 0.94999999999999996) */
    const char *fmt = value == floor(value) && fabs(value) < 9e15 ? "%.0f" : "%.10g";
    char num[48];
    snprintf(num, sizeof num, fmt, value);
    if (labels && *labels) es_sv_buf_printf(b, "%s{%s} %s\n", name, labels, num);
    else es_sv_buf_printf(b, "%s %s\n", name, num);
}

void es_listen_opts_init(es_listen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body = 1u << 20;
    o->max_header = 16u << 10;
    o->header_timeout = 10;
    o->body_timeout = 30;
    o->idle_timeout = 60;
    o->max_conns = 1024;
    o->stop_fd = -1;
}

int es_probe_at_parse(const char *name, es_probe_at *out)
{
    if (!strcmp(name, "tokens")) *out = ES_PROBE_AT_TOKENS;
    else if (!strcmp(name, "paragraphs")) *out = ES_PROBE_AT_PARAGRAPHS;
    else return ES_EINVAL;
    return ES_OK;
}

const char *es_probe_at_name(es_probe_at a) { return a == ES_PROBE_AT_PARAGRAPHS ? "paragraphs" : "tokens"; }
