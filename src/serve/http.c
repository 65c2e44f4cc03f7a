/* http.c - the HTTP front shared by serve and proxy: one libmicrohttpd daemon
 * in external-epoll mode, driven from the caller's event loop (the proxy's
 * loop is libcurl's, serve's a plain poll), so that everything touching a
 * connection happens on one thread and no lock is needed.
 *
 * A request is an exchange (es_sv_xchg).  Its head is checked as soon as it
 * is in (size, API key, Content-Length against the body limit, the route is
 * the handler's), its body is collected up to the limit, then the handler
 * runs.  It may reply at once, or later: the connection is then suspended
 * and resumed when the reply, or the first bytes of a stream, are ready.  A
 * streamed response is fed through a buffer; when the buffer runs dry the
 * content reader suspends the connection and the next write resumes it.
 *
 * Slow clients: libmicrohttpd closes connections that stay silent
 * (idle_timeout); a client that trickles a head or a body a byte at a time
 * is cut at header_timeout / body_timeout by shutting its socket down from
 * here (the daemon then sees the end of the stream and closes it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sv.h"

/* One TCP connection, for the head and body deadlines. */
typedef struct conn_state {
    struct conn_state *prev, *next;
    struct MHD_Connection *c;
    int fd;
    double since;        /* connected, or the previous response finished */
    double body_since;   /* head complete */
    int head_done, body_done, cut;
} conn_state;

typedef enum xphase { X_BODY = 0, X_WAIT, X_REPLIED } xphase;

struct es_sv_xchg {
    es_sv_xchg *prev, *next;
    es_sv_http *h;
    struct MHD_Connection *c;
    conn_state *cs;
    char method[16];
    char path[256];
    es_sv_buf body;
    xphase phase;
    int in_access;       /* inside the access handler: a reply is queued at once */
    int suspended;
    int gone;            /* on_gone was called */
    int refs;            /* the request, and a streamed response */
    int too_large;
    uint64_t dropped;
    unsigned status;
    struct MHD_Response *pending;
    /* streamed response */
    int streaming;
    es_sv_buf out;
    size_t out_off;
    int out_ended;
    double started;
    void *owner;
};

struct es_sv_http {
    es_sv_http_cfg cfg;
    struct MHD_Daemon *d;
    int port;
    int stopping;
    unsigned open;
    es_sv_xchg *xs;      /* open exchanges */
    conn_state *conns;
    double last_sweep;
    char *api_key;
};

/* --------------------------------------------------------- the exchange */

static void xchg_unref(es_sv_xchg *x)
{
    if (--x->refs > 0) return;
    es_sv_buf_free(&x->body);
    es_sv_buf_free(&x->out);
    if (x->pending) MHD_destroy_response(x->pending);
    free(x);
}

static void xchg_resume(es_sv_xchg *x)
{
    if (!x->suspended) return;
    x->suspended = 0;
    MHD_resume_connection(x->c);
}

const char *es_sv_xchg_method(const es_sv_xchg *x) { return x->method; }
const char *es_sv_xchg_path(const es_sv_xchg *x) { return x->path; }
double es_sv_xchg_started(const es_sv_xchg *x) { return x->started; }
unsigned es_sv_xchg_status(const es_sv_xchg *x) { return x->status; }
void es_sv_xchg_set_owner(es_sv_xchg *x, void *owner) { x->owner = owner; }
void *es_sv_xchg_owner(const es_sv_xchg *x) { return x->owner; }

const char *es_sv_xchg_body(const es_sv_xchg *x, size_t *len)
{
    if (len) *len = x->body.n;
    return x->body.p ? x->body.p : "";
}

const char *es_sv_xchg_header(const es_sv_xchg *x, const char *name)
{
    return MHD_lookup_connection_value(x->c, MHD_HEADER_KIND, name);
}

/* Queue now when inside the access handler; else keep it and resume the
 * connection, whose access handler then queues it. */
static int xchg_queue(es_sv_xchg *x, unsigned status, struct MHD_Response *r)
{
    if (x->phase == X_REPLIED || x->gone) {
        MHD_destroy_response(r);
        return ES_EINVAL;
    }
    x->status = status;
    x->phase = X_REPLIED;
    if (x->in_access) {
        enum MHD_Result ok = MHD_queue_response(x->c, status, r);
        MHD_destroy_response(r);
        return ok == MHD_YES ? ES_OK : ES_EIO;
    }
    x->pending = r;
    xchg_resume(x);
    return ES_OK;
}

int es_sv_reply(es_sv_xchg *x, unsigned status, const char *content_type, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return ES_ENOMEM;
    if (content_type) MHD_add_response_header(r, "Content-Type", content_type);
    return xchg_queue(x, status, r);
}

int es_sv_reply_json(es_sv_xchg *x, unsigned status, const json_t *v)
{
    es_sv_buf b = {0};
    int rc = es_sv_buf_json(&b, v);
    if (!rc) rc = es_sv_buf_str(&b, "\n");
    if (!rc) rc = es_sv_reply(x, status, "application/json", b.p, b.n);
    es_sv_buf_free(&b);
    return rc;
}

int es_sv_reply_error(es_sv_xchg *x, unsigned status, const char *type, const char *param, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *v = es_sv_error_json(type, param, msg, NULL);
    if (!v) return ES_ENOMEM;
    int rc = es_sv_reply_json(x, status, v);
    json_decref(v);
    return rc;
}

/* The content reader of a stream: what is buffered, else the end, else
 * suspend until the next write. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    es_sv_xchg *x = cls;
    size_t have = x->out.n - x->out_off;
    if (have) {
        size_t n = have < max ? have : max;
        memcpy(buf, x->out.p + x->out_off, n);
        x->out_off += n;
        if (x->out_off == x->out.n) {
            es_sv_buf_reset(&x->out);
            x->out_off = 0;
        }
        return (ssize_t)n;
    }
    if (x->out_ended) return MHD_CONTENT_READER_END_OF_STREAM;
    if (x->h->stopping || x->gone) return MHD_CONTENT_READER_END_WITH_ERROR;
    x->suspended = 1;
    MHD_suspend_connection(x->c);
    return 0;
}

static void stream_free(void *cls) { xchg_unref(cls); }

int es_sv_stream_begin(es_sv_xchg *x, unsigned status, const char *content_type)
{
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, x, stream_free);
    if (!r) return ES_ENOMEM;
    x->refs++;
    x->streaming = 1;
    MHD_add_response_header(r, "Content-Type", content_type ? content_type : "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    return xchg_queue(x, status, r);
}

int es_sv_stream_write(es_sv_xchg *x, const void *data, size_t n)
{
    if (!x->streaming || x->out_ended) return ES_EINVAL;
    if (x->gone) return ES_EIO;
    if (es_sv_buf_add(&x->out, data, n)) return ES_ENOMEM;
    xchg_resume(x);
    return ES_OK;
}

int es_sv_stream_end(es_sv_xchg *x)
{
    if (!x->streaming) return ES_EINVAL;
    x->out_ended = 1;
    xchg_resume(x);
    return ES_OK;
}

size_t es_sv_stream_pending(const es_sv_xchg *x) { return x->out.n - x->out_off; }

/* ------------------------------------------------------------ callbacks */

static conn_state *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* Checks that need only the head: size, key, declared body size. */
static int check_head(es_sv_xchg *x, const char *url)
{
    es_sv_http *h = x->h;
    size_t head = strlen(url) + strlen(x->method) + 12;
    MHD_get_connection_values(x->c, MHD_HEADER_KIND, count_header, &head);
    if (head > h->cfg.max_header)
        return es_sv_reply_error(x, 431, "invalid_request_error", NULL,
                                 "request head of %zu bytes is over the limit of %zu", head, h->cfg.max_header),
               1;
    if (h->api_key && !es_sv_auth_ok(es_sv_xchg_header(x, "Authorization"), h->api_key) &&
        strcmp(x->path, "/healthz"))
        return es_sv_reply_error(x, 401, "authentication_error", NULL,
                                 "missing or wrong API key: send 'Authorization: Bearer KEY'"),
               1;
    const char *cl = es_sv_xchg_header(x, "Content-Length");
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || n > h->cfg.max_body)
            return es_sv_reply_error(x, 413, "invalid_request_error", NULL,
                                     "request body of %s bytes is over the limit of %zu", cl, h->cfg.max_body),
                   1;
    }
    return 0;
}

static es_sv_xchg *xchg_new(es_sv_http *h, struct MHD_Connection *c, const char *url, const char *method)
{
    es_sv_xchg *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->h = h;
    x->c = c;
    x->refs = 1;
    x->started = es_sv_now();
    snprintf(x->method, sizeof x->method, "%s", method);
    snprintf(x->path, sizeof x->path, "%s", url);
    x->path[strcspn(x->path, "?")] = '\0';
    x->next = h->xs;
    if (h->xs) h->xs->prev = x;
    h->xs = x;
    h->open++;
    x->cs = conn_of(c);
    if (x->cs) {
        x->cs->head_done = 1;
        x->cs->body_since = x->started;
    }
    return x;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
    (void)version;
    es_sv_http *h = cls;
    es_sv_xchg *x = *req_cls;
    if (!x) {
        x = xchg_new(h, c, url, method);
        if (!x) return MHD_NO;
        *req_cls = x;
        x->in_access = 1;
        check_head(x, url);
        x->in_access = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        /* beyond the limit without a Content-Length (chunked): the rest is
         * read and dropped, and the 413 goes out once the body is in (a
         * response queued mid-body is not sent before it ends); a client that
         * keeps sending far beyond is cut off */
        if (x->phase == X_BODY && (x->too_large || x->body.n + *upload_size > h->cfg.max_body)) {
            if (!x->too_large) es_sv_buf_free(&x->body);
            x->too_large = 1;
            x->dropped += *upload_size;
            if (x->dropped > 64 * (uint64_t)h->cfg.max_body) return MHD_NO;
        } else if (x->phase == X_BODY && es_sv_buf_add(&x->body, upload, *upload_size)) {
            return MHD_NO;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    x->in_access = 1;
    if (x->pending) {
        struct MHD_Response *r = x->pending;
        x->pending = NULL;
        enum MHD_Result ok = MHD_queue_response(c, x->status, r);
        MHD_destroy_response(r);
        x->in_access = 0;
        return ok;
    }
    if (x->phase == X_BODY && x->too_large) {
        es_sv_reply_error(x, 413, "invalid_request_error", NULL, "request body is over the limit of %zu bytes",
                          h->cfg.max_body);
    } else if (x->phase == X_BODY) {
        if (x->cs) x->cs->body_done = 1;
        x->phase = X_WAIT;
        h->cfg.on_request(h->cfg.ctx, x);
        if (x->phase == X_WAIT && !x->gone) {
            x->suspended = 1;
            MHD_suspend_connection(c);
        }
    }
    x->in_access = 0;
    return MHD_YES;
}

static void log_request(es_sv_http *h, const es_sv_xchg *x, enum MHD_RequestTerminationCode toe)
{
    if (!h->cfg.log) return;
    static const char *why[] = {"ok", "error", "timeout", "shutdown", "read error", "client gone"};
    fprintf(h->cfg.log, "earlystop %s: %s %s %u %.3fs%s%s\n", h->cfg.name ? h->cfg.name : "http", x->method, x->path,
            x->status, es_sv_now() - x->started, toe ? " " : "", toe && (unsigned)toe < 6 ? why[toe] : "");
    fflush(h->cfg.log);
}

/* The request is over: the owner lets go, then the exchange is freed once
 * the stream's response has been released too. */
static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    es_sv_http *h = cls;
    es_sv_xchg *x = *req_cls;
    conn_state *cs = conn_of(c);
    if (cs) {
        cs->since = es_sv_now();
        cs->head_done = cs->body_done = 0;
    }
    if (!x) return;
    *req_cls = NULL;
    log_request(h, x, toe);
    x->gone = 1;
    x->suspended = 0;
    if (h->cfg.on_gone) h->cfg.on_gone(h->cfg.ctx, x);
    if (x->prev) x->prev->next = x->next;
    else h->xs = x->next;
    if (x->next) x->next->prev = x->prev;
    h->open--;
    xchg_unref(x);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    es_sv_http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_state *cs = calloc(1, sizeof *cs);
        if (!cs) return;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cs->c = c;
        cs->fd = ci ? ci->connect_fd : -1;
        cs->since = es_sv_now();
        cs->next = h->conns;
        if (h->conns) h->conns->prev = cs;
        h->conns = cs;
        *socket_context = cs;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_state *cs = *socket_context;
        if (!cs) return;
        if (cs->prev) cs->prev->next = cs->next;
        else h->conns = cs->next;
        if (cs->next) cs->next->prev = cs->prev;
        free(cs);
        *socket_context = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    es_sv_http *h = cls;
    if (!h->cfg.log) return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    fprintf(h->cfg.log, "earlystop %s: http: %s\n", h->cfg.name ? h->cfg.name : "http", msg);
    fflush(h->cfg.log);
}

/* ------------------------------------------------------------- daemon */

static int resolve(const char *host, int port, struct sockaddr_storage *ss, int *v6, es_error *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc || !res)
        return es_error_set(err, ES_EINVAL, NULL, 0, "host", "cannot resolve '%s': %s", host, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return ES_OK;
}

int es_sv_http_new(const es_sv_http_cfg *cfg, es_sv_http **out, es_error *err)
{
    *out = NULL;
    es_sv_http *h = calloc(1, sizeof *h);
    if (!h) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "server");
    h->cfg = *cfg;
    if (cfg->api_key && *cfg->api_key && !(h->api_key = strdup(cfg->api_key))) {
        free(h);
        return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "server");
    }
    struct sockaddr_storage ss;
    int v6 = 0;
    int rc = resolve(cfg->host, cfg->port, &ss, &v6, err);
    if (rc) {
        free(h->api_key);
        free(h);
        return rc;
    }
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER,
                            mhd_log, h, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)(cfg->max_header + 32768), MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned int)cfg->idle_timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_conns,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION,
                            on_connection, h, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024, MHD_OPTION_END);
    if (!h->d) {
        free(h->api_key);
        free(h);
        return es_error_set(err, ES_EIO, NULL, 0, "port", "cannot listen on %s port %d: %s", cfg->host, cfg->port,
                            strerror(errno ? errno : EADDRINUSE));
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : cfg->port;
    *out = h;
    return ES_OK;
}

void es_sv_http_free(es_sv_http *h)
{
    if (!h) return;
    h->stopping = 1;
    for (es_sv_xchg *x = h->xs; x; x = x->next) xchg_resume(x);
    MHD_run(h->d);
    MHD_stop_daemon(h->d);
    free(h->api_key);
    free(h);
}

int es_sv_http_port(const es_sv_http *h) { return h->port; }

int es_sv_http_fd(const es_sv_http *h)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
    return di ? di->epoll_fd : -1;
}

int es_sv_http_timeout(es_sv_http *h, int max_ms)
{
    MHD_UNSIGNED_LONG_LONG t = 0;
    if (MHD_get_timeout(h->d, &t) == MHD_YES && t < (MHD_UNSIGNED_LONG_LONG)max_ms) return (int)t;
    return max_ms;
}

unsigned es_sv_http_open(const es_sv_http *h) { return h->open; }

/* Heads and bodies that take too long: shut the socket, the daemon closes
 * the connection on its next read.  Suspended connections are being
 * answered, not read, and are left alone. */
static void sweep(es_sv_http *h, double now)
{
    for (conn_state *cs = h->conns; cs; cs = cs->next) {
        if (cs->cut || cs->fd < 0) continue;
        int late = (!cs->head_done && now - cs->since > h->cfg.header_timeout) ||
                   (cs->head_done && !cs->body_done && now - cs->body_since > h->cfg.body_timeout);
        if (late) {
            cs->cut = 1;
            shutdown(cs->fd, SHUT_RDWR);
        }
    }
}

void es_sv_http_run(es_sv_http *h)
{
    MHD_run(h->d);
    double now = es_sv_now();
    if (now - h->last_sweep >= 0.25) {
        h->last_sweep = now;
        sweep(h, now);
        MHD_run(h->d);
    }
}

/* Here, not in oai.c: the parser stays free of the HTTP front (the fuzz
 * target links it alone). */
es_oai_req *es_sv_read_request(es_sv_xchg *x, int chat, const es_oai_limits *lim)
{
    size_t len;
    const char *body = es_sv_xchg_body(x, &len);
    es_oai_error e;
    es_oai_req *q = NULL;
    if (es_oai_parse(chat ? ES_OAI_CHAT : ES_OAI_COMPLETIONS, body, len, lim, &q, &e)) {
        es_sv_reply_error(x, (unsigned)e.status, e.type, e.param, "%s", e.message);
        return NULL;
    }
    return q;
}
