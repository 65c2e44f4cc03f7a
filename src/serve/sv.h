/* sv.h - internals of the serve layer: byte buffers, the HTTP front (one
 * libmicrohttpd daemon driven from the caller's event loop), OpenAI request
 * parsing and response pieces, the SSE reader, metrics, model families. */
#ifndef ES_SV_H
#define ES_SV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "earlystop_serve.h"

/* ------------------------------------------------------------------ buffer */

/* A growable byte string, always NUL-terminated (p may be NULL while empty). */
typedef struct es_sv_buf {
    char *p;
    size_t n, cap;
} es_sv_buf;

int es_sv_buf_reserve(es_sv_buf *b, size_t extra);
int es_sv_buf_add(es_sv_buf *b, const void *data, size_t n);
int es_sv_buf_str(es_sv_buf *b, const char *s);
int es_sv_buf_printf(es_sv_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Drop the first n bytes. */
void es_sv_buf_consume(es_sv_buf *b, size_t n);
void es_sv_buf_reset(es_sv_buf *b);
void es_sv_buf_free(es_sv_buf *b);

/* Monotonic seconds. */
double es_sv_now(void);

/* compact JSON text of v appended to b (floats with 9 significant digits:
 * a float32 round-trips) */
int es_sv_buf_json(es_sv_buf *b, const json_t *v);
/* "data: <json>\n\n" */
int es_sv_buf_sse(es_sv_buf *b, const json_t *v);

/* -------------------------------------------------------------- HTTP front */

typedef struct es_sv_http es_sv_http;
typedef struct es_sv_xchg es_sv_xchg;

typedef struct es_sv_http_cfg {
    const char *host;          /* address to bind ("127.0.0.1", "::", "0.0.0.0") */
    int port;                  /* 0 = any free port */
    const char *api_key;       /* Bearer key the clients must send; NULL = none */
    size_t max_body;           /* request body bytes at most */
    size_t max_header;         /* request head bytes at most */
    double header_timeout;     /* seconds to receive a request head */
    double body_timeout;       /* seconds to receive a body once the head is in */
    unsigned idle_timeout;     /* seconds a connection may stay silent */
    unsigned max_conns;
    /* called on the loop thread when a request is complete (routing,
     * auth and limits passed); it replies now or later */
    void (*on_request)(void *ctx, es_sv_xchg *x);
    /* the exchange is over (sent, or the client went away): drop it */
    void (*on_gone)(void *ctx, es_sv_xchg *x);
    void *ctx;
    FILE *log;                 /* access log and daemon errors; NULL = none */
    const char *name;          /* "serve" / "proxy", for the log */
} es_sv_http_cfg;

int es_sv_http_new(const es_sv_http_cfg *cfg, es_sv_http **out, es_error *err);
/* Resume every waiting connection and stop (exchanges get on_gone). */
void es_sv_http_free(es_sv_http *h);
int es_sv_http_port(const es_sv_http *h);
/* The fd to poll for reading (an epoll set of the daemon's sockets). */
int es_sv_http_fd(const es_sv_http *h);
/* Milliseconds until the daemon wants to run again (at most max_ms). */
int es_sv_http_timeout(es_sv_http *h, int max_ms);
/* Process what is ready: accept, read, call handlers, write; enforce the
 * head and body deadlines. */
void es_sv_http_run(es_sv_http *h);
/* Requests currently open (for /metrics and tests). */
unsigned es_sv_http_open(const es_sv_http *h);

/* The request. */
const char *es_sv_xchg_method(const es_sv_xchg *x);
const char *es_sv_xchg_path(const es_sv_xchg *x);
const char *es_sv_xchg_body(const es_sv_xchg *x, size_t *len);
const char *es_sv_xchg_header(const es_sv_xchg *x, const char *name);
double es_sv_xchg_started(const es_sv_xchg *x);
/* The status replied (0 before a reply). */
unsigned es_sv_xchg_status(const es_sv_xchg *x);
/* The handler's own pointer. */
void es_sv_xchg_set_owner(es_sv_xchg *x, void *owner);
void *es_sv_xchg_owner(const es_sv_xchg *x);

/* A whole response (body copied).  Now, or later from the loop thread. */
int es_sv_reply(es_sv_xchg *x, unsigned status, const char *content_type, const char *body, size_t len);
/* An OpenAI error object: {"error":{"message","type","param","code"}}. */
int es_sv_reply_error(es_sv_xchg *x, unsigned status, const char *type, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
int es_sv_reply_json(es_sv_xchg *x, unsigned status, const json_t *v);
/* A streamed response (chunked): begin, write any number of times, end. */
int es_sv_stream_begin(es_sv_xchg *x, unsigned status, const char *content_type);
int es_sv_stream_write(es_sv_xchg *x, const void *data, size_t n);
int es_sv_stream_end(es_sv_xchg *x);
/* Bytes written but not yet taken by the connection (back-pressure). */
size_t es_sv_stream_pending(const es_sv_xchg *x);

/* The OpenAI error JSON text for status/type/message (param may be NULL). */
json_t *es_sv_error_json(const char *type, const char *param, const char *message, const char *code);

/* --------------------------------------------------------- OpenAI bodies */

/* What es_oai_parse found (fields point into root). */
struct es_oai_req {
    int kind;                  /* ES_OAI_COMPLETIONS / ES_OAI_CHAT */
    json_t *root;              /* the body, owned: the proxy forwards it */
    const char *model;         /* NULL when absent */
    const char **prompts;      /* completions: the prompts (chat: NULL) */
    size_t n_prompts;          /* completions: how many; chat: 1 */
    json_t *messages;          /* chat: the messages (borrowed from root) */
    int n;                     /* choices per prompt (default 1) */
    int max_tokens;            /* -1 when not given */
    double temperature;        /* NaN when not given */
    double top_p;              /* NaN when not given */
    int has_seed;
    int64_t seed;
    const char *stop[16];
    int n_stop;
    int stream, include_usage, continuous_usage;
    int logprobs;              /* logprobs asked for */
    int top_logprobs;          /* alternatives per token */
    int echo;
    int continue_final;        /* chat: continue the last (assistant) message */
    /* the proxy's per-request overrides: "earlystop": {"policy", "max_em_drop"} */
    const char *es_policy;
    double es_max_em_drop;     /* NaN when not given */
};

/* Parse the exchange's body as a request of the endpoint (chat or not);
 * NULL after replying the 400 (or 500) that says why. */
es_oai_req *es_sv_read_request(es_sv_xchg *x, int chat, const es_oai_limits *lim);

/* The built-in model's chat template: each message's text followed by a
 * newline, roles dropped; with continue_final the last message has no
 * newline after it.  ES_EINVAL (err filled) for content that is not text. */
int es_sv_chat_prompt(const es_oai_req *r, es_sv_buf *out, es_oai_error *err);
/* The answer written in text[a..b) as a paragraph probe reads it for type t
 * (docs/serving.md): number, the last number; math, the family's answer
 * (\boxed{}, or "So the answer is X.") else the last number; text, date,
 * choice, the family's answer.  text[b] is read as the end (briefly set to
 * '\0' and restored).  1 with it in ans[cap], or 0. */
int es_sv_paragraph_answer(const es_family *f, es_answer_type t, char *text, size_t a, size_t b, char *ans, size_t cap);
/* Text of a message's content (a string, or text parts joined); NULL when
 * it is neither. */
int es_sv_message_text(json_t *content, es_sv_buf *out);

/* ------------------------------------------------------------- metrics */

/* A latency histogram with Prometheus' cumulative buckets. */
enum { ES_SV_HIST_BUCKETS = 16 };
typedef struct es_sv_hist {
    uint64_t count;
    double sum;
    uint64_t bucket[ES_SV_HIST_BUCKETS];   /* observations <= bound[i] */
} es_sv_hist;

extern const double es_sv_hist_bounds[ES_SV_HIST_BUCKETS];
void es_sv_hist_add(es_sv_hist *h, double seconds);
void es_sv_hist_print(es_sv_buf *b, const char *name, const char *help, const char *labels, const es_sv_hist *h);
/* One counter or gauge in Prometheus text (HELP and TYPE lines once per name). */
void es_sv_metric(es_sv_buf *b, const char *name, const char *type, const char *help, const char *labels,
                  double value);

/* ------------------------------------------------------------ helpers */

/* Constant-time comparison of a presented Bearer header with the key. */
int es_sv_auth_ok(const char *authorization, const char *key);
/* A request id "<prefix>-<16 hex>" from a counter and the time. */
void es_sv_request_id(char *out, size_t cap, const char *prefix, uint64_t n);

#endif
