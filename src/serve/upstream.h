/* upstream.h - calls to the upstream engine (libcurl multi), see upstream.c. */
#ifndef ES_SV_UPSTREAM_H
#define ES_SV_UPSTREAM_H

#include <curl/curl.h>

#include "sv.h"

typedef struct es_sv_up es_sv_up;
typedef struct es_sv_call es_sv_call;

/* One POST (or GET) to the upstream.  The owner reads `in` (bytes received, which it
 * may consume), `status`, `is_sse`, and `done` / `result` when it is over. */
struct es_sv_call {
    es_sv_call *prev, *next;     /* every live call */
    es_sv_call *rprev, *rnext;   /* the ready list */
    es_sv_up *up;
    CURL *e;
    struct curl_slist *hdrs;
    es_sv_buf req;
    es_sv_buf in;
    size_t max_in;
    long status;
    int is_sse;
    int done, cancelled, on_ready, overflow;
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
    void *owner;
    int kind;
    uint32_t tag;                /* the owner's (a probe's index) */
    double t_start, done_at;
};

int es_sv_up_new(const char *base, const char *key, double connect_timeout, double idle_timeout,
                 double request_timeout, int max_conns, es_sv_up **out, es_error *err);
void es_sv_up_free(es_sv_up *u);
CURLM *es_sv_up_multi(es_sv_up *u);
/* The event loop: watch fd too (reported as bit `tag` of *ready, tag < 32);
 * wait up to max_ms for curl's sockets and those fds, drive the transfers
 * that are ready, then es_sv_up_dispatch hands out the news. */
int es_sv_up_watch(es_sv_up *u, int fd, unsigned tag);
int es_sv_up_wait(es_sv_up *u, int max_ms, unsigned *ready);
unsigned es_sv_up_calls(const es_sv_up *u);
/* POST body to base + path (body NULL: a GET, as /v1/models); NULL when out
 * of memory.  client_auth: the
 * client's Authorization value, passed on when no upstream key is set. */
es_sv_call *es_sv_call_start(es_sv_up *u, const char *path, const char *body, size_t len, const char *client_auth,
                             void *owner, int kind);
/* Stop a call now; its owner hears no more of it. */
void es_sv_call_cancel(es_sv_call *c);
/* Why a call failed (curl's words). */
const char *es_sv_call_error(const es_sv_call *c);
/* A finished call that failed: the status to answer (504 timed out, 502
 * unreachable or not HTTP, else the upstream's own non-2xx) and msg says why;
 * 0 for a 2xx. */
long es_sv_call_failure(const es_sv_call *c, char *msg, size_t cap);
/* After curl_multi_perform: fn for every call with news (bytes or its end);
 * finished calls are released after fn returns. */
void es_sv_up_dispatch(es_sv_up *u, void (*fn)(es_sv_call *c, void *ctx), void *ctx);

#endif
