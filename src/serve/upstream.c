/* upstream.c - calls to an OpenAI-compatible engine over libcurl's multi
 * interface: one event loop drives every transfer, no thread per request.
 *
 * The loop is curl's socket interface on an epoll set of our own: curl says
 * which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
 * (CURLMOPT_TIMERFUNCTION), the caller adds its own fds (the HTTP front's
 * epoll set, the stop pipe), and only the sockets that are ready are
 * handled, so the cost of a wake-up does not grow with the streams open
 * (curl_multi_poll polls every transfer's socket each time: at 256 streams
 * that was most of the proxy's time).
 *
 * libcurl forbids adding or removing transfers from inside its callbacks,
 * and what a caller does with a piece of an answer (launch a probe, cancel a
 * stream) is exactly that.  So the callbacks only buffer: the body bytes go
 * to the call's buffer and the call joins a ready list; es_sv_up_dispatch,
 * called after es_sv_up_wait, hands the news to the owners, who may then
 * start and cancel calls freely.  A cancelled call is unlinked at once and
 * freed after the dispatch round, so a list being walked never loses its
 * next element. */
#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "upstream.h"

struct es_sv_up {
    CURLM *multi;
    int ep;                    /* epoll set: curl's sockets and the caller's fds */
    long timer_ms;             /* curl's timeout (-1 none), from when it was set */
    double timer_set;
    char base[1024];
    char *auth;                /* "Authorization: Bearer ..." or NULL */
    double connect_timeout, idle_timeout, request_timeout;
    es_sv_call *ready_head, *ready_tail;
    es_sv_call *dead;          /* cancelled, to free after the round */
    es_sv_call *all;
    unsigned n_calls;
    int in_dispatch;
};

/* curl asks to watch a socket (or to stop watching it). */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    es_sv_up *u = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(u->ep, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(u->multi, s, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    ev.data.u64 = (uint64_t)s;
    if (socketp) {
        epoll_ctl(u->ep, EPOLL_CTL_MOD, s, &ev);
    } else {
        epoll_ctl(u->ep, EPOLL_CTL_ADD, s, &ev);
        curl_multi_assign(u->multi, s, u);
    }
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    es_sv_up *u = userp;
    u->timer_ms = timeout_ms;
    u->timer_set = es_sv_now();
    return 0;
}

/* The caller's fds carry a tag above every socket number. */
#define ES_SV_TAG_BASE (1ULL << 40)

int es_sv_up_watch(es_sv_up *u, int fd, unsigned tag)
{
    struct epoll_event ev = {0};
    ev.events = EPOLLIN;
    ev.data.u64 = ES_SV_TAG_BASE + tag;
    return epoll_ctl(u->ep, EPOLL_CTL_ADD, fd, &ev) ? ES_EIO : ES_OK;
}

int es_sv_up_wait(es_sv_up *u, int max_ms, unsigned *ready)
{
    *ready = 0;
    int timeout = max_ms;
    if (u->timer_ms >= 0) {
        long left = u->timer_ms - (long)((es_sv_now() - u->timer_set) * 1000);
        if (left < 0) left = 0;
        if (left < timeout) timeout = (int)left;
    }
    struct epoll_event evs[128];
    int n = epoll_wait(u->ep, evs, 128, timeout);
    if (n < 0) return errno == EINTR ? ES_OK : ES_EIO;
    int running;
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        if (d >= ES_SV_TAG_BASE) {
            *ready |= 1u << (d - ES_SV_TAG_BASE);
            continue;
        }
        int flags = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) | (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                    (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(u->multi, (curl_socket_t)d, flags, &running);
    }
    if (u->timer_ms >= 0 && (es_sv_now() - u->timer_set) * 1000 >= (double)u->timer_ms) {
        u->timer_ms = -1;
        curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    return ES_OK;
}

int es_sv_up_new(const char *base, const char *key, double connect_timeout, double idle_timeout,
                 double request_timeout, int max_conns, es_sv_up **out, es_error *err)
{
    *out = NULL;
    if (!base || (strncmp(base, "http://", 7) && strncmp(base, "https://", 8)))
        return es_error_set(err, ES_EINVAL, NULL, 0, "upstream", "upstream '%s' is not an http:// or https:// URL",
                            base ? base : "");
    es_sv_up *u = calloc(1, sizeof *u);
    if (!u) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "upstream");
    snprintf(u->base, sizeof u->base, "%s", base);
    size_t n = strlen(u->base);
    while (n && u->base[n - 1] == '/') u->base[--n] = '\0';
    if (n > 3 && !strcmp(u->base + n - 3, "/v1")) u->base[n - 3] = '\0'; /* the paths add /v1 */
    if (key && *key) {
        size_t k = strlen(key) + 32;
        u->auth = malloc(k);
        if (u->auth) snprintf(u->auth, k, "Authorization: Bearer %s", key);
    }
    u->connect_timeout = connect_timeout;
    u->idle_timeout = idle_timeout;
    u->request_timeout = request_timeout;
    u->multi = curl_multi_init();
    u->ep = epoll_create1(EPOLL_CLOEXEC);
    u->timer_ms = -1;
    if (!u->multi || u->ep < 0 || (key && *key && !u->auth)) {
        es_sv_up_free(u);
        return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "upstream");
    }
    curl_multi_setopt(u->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_conns);
    curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_conns);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    *out = u;
    return ES_OK;
}

static void call_free(es_sv_call *c)
{
    if (c->e) curl_easy_cleanup(c->e);
    curl_slist_free_all(c->hdrs);
    es_sv_buf_free(&c->req);
    es_sv_buf_free(&c->in);
    free(c);
}

static void ready_unlink(es_sv_up *u, es_sv_call *c)
{
    if (!c->on_ready) return;
    if (c->rprev) c->rprev->rnext = c->rnext;
    else u->ready_head = c->rnext;
    if (c->rnext) c->rnext->rprev = c->rprev;
    else u->ready_tail = c->rprev;
    c->rprev = c->rnext = NULL;
    c->on_ready = 0;
}

static void ready_push(es_sv_up *u, es_sv_call *c)
{
    if (c->on_ready || c->cancelled) return;
    c->on_ready = 1;
    c->rnext = NULL;
    c->rprev = u->ready_tail;
    if (u->ready_tail) u->ready_tail->rnext = c;
    else u->ready_head = c;
    u->ready_tail = c;
}

void es_sv_up_free(es_sv_up *u)
{
    if (!u) return;
    while (u->all) es_sv_call_cancel(u->all);
    while (u->dead) {
        es_sv_call *c = u->dead;
        u->dead = c->next;
        call_free(c);
    }
    if (u->multi) curl_multi_cleanup(u->multi);
    if (u->ep >= 0) close(u->ep);
    free(u->auth);
    free(u);
}

CURLM *es_sv_up_multi(es_sv_up *u) { return u->multi; }
unsigned es_sv_up_calls(const es_sv_up *u) { return u->n_calls; }

/* The status line of each response head ("HTTP/1.1 200 OK"); the last one
 * counts (a 100 Continue comes first). */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    es_sv_call *c = ud;
    size_t len = size * n;
    if (len > 9 && !strncmp(p, "HTTP/", 5)) {
        const char *sp = memchr(p, ' ', len);
        if (sp) c->status = strtol(sp + 1, NULL, 10);
        c->is_sse = 0;
    } else if (len > 13 && !strncasecmp(p, "content-type:", 13)) {
        c->is_sse = 0;
        for (size_t i = 13; i + 17 <= len && !c->is_sse; i++) c->is_sse = !strncasecmp(p + i, "text/event-stream", 17);
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    es_sv_call *c = ud;
    size_t len = size * n;
    if (c->cancelled) return 0;
    if (c->in.n + len > c->max_in) {
        c->overflow = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (es_sv_buf_add(&c->in, p, len)) return 0;
    ready_push(c->up, c);
    return len;
}

es_sv_call *es_sv_call_start(es_sv_up *u, const char *path, const char *body, size_t len, const char *client_auth,
                             void *owner, int kind)
{
    es_sv_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->up = u;
    c->owner = owner;
    c->kind = kind;
    c->max_in = 64u << 20;
    c->t_start = es_sv_now();
    char url[1200];
    snprintf(url, sizeof url, "%s%s", u->base, path);
    c->e = curl_easy_init();
    if (!c->e || (body && es_sv_buf_add(&c->req, body, len))) {
        call_free(c);
        return NULL;
    }
    if (body) c->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    c->hdrs = curl_slist_append(c->hdrs, "Accept: application/json, text/event-stream");
    c->hdrs = curl_slist_append(c->hdrs, "Expect:");
    if (u->auth) c->hdrs = curl_slist_append(c->hdrs, u->auth);
    else if (client_auth) {
        char h[4200];
        snprintf(h, sizeof h, "Authorization: %s", client_auth);
        c->hdrs = curl_slist_append(c->hdrs, h);
    }
    CURL *e = c->e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->req.p);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->req.n);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(u->connect_timeout * 1000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(u->request_timeout * 1000));
    /* silence mid-answer: under 1 byte/s for idle_timeout seconds */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)(u->idle_timeout + 0.5));
    if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
        call_free(c);
        return NULL;
    }
    c->next = u->all;
    if (u->all) u->all->prev = c;
    u->all = c;
    u->n_calls++;
    return c;
}

void es_sv_call_cancel(es_sv_call *c)
{
    if (!c || c->cancelled) return;
    es_sv_up *u = c->up;
    c->cancelled = 1;
    ready_unlink(u, c);
    curl_multi_remove_handle(u->multi, c->e);
    if (c->prev) c->prev->next = c->next;
    else u->all = c->next;
    if (c->next) c->next->prev = c->prev;
    u->n_calls--;
    /* freed after the round: a caller may still hold it in a list walk */
    c->next = u->dead;
    u->dead = c;
    if (!u->in_dispatch) {
        while (u->dead) {
            es_sv_call *d = u->dead;
            u->dead = d->next;
            call_free(d);
        }
    }
}

const char *es_sv_call_error(const es_sv_call *c)
{
    if (c->overflow) return "the upstream's answer is over 64 MiB";
    if (c->errbuf[0]) return c->errbuf;
    return curl_easy_strerror(c->result);
}

long es_sv_call_failure(const es_sv_call *c, char *msg, size_t cap)
{
    if (c->result != CURLE_OK) {
        int timed_out = c->result == CURLE_OPERATION_TIMEDOUT;
        snprintf(msg, cap, "upstream %s: %s", timed_out ? "timed out" : "failed", es_sv_call_error(c));
        return timed_out ? 504 : 502;
    }
    if (c->status < 200 || c->status >= 300) {
        snprintf(msg, cap, "the upstream answered %ld", c->status);
        return c->status ? c->status : 502;
    }
    return 0;
}

void es_sv_up_dispatch(es_sv_up *u, void (*fn)(es_sv_call *c, void *ctx), void *ctx)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(u->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        es_sv_call *c = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        if (!c || c->cancelled) continue;
        c->done = 1;
        c->result = m->data.result;
        if (!c->status) curl_easy_getinfo(c->e, CURLINFO_RESPONSE_CODE, &c->status);
        c->done_at = es_sv_now();
        ready_push(u, c);
    }
    u->in_dispatch = 1;
    while (u->ready_head) {
        es_sv_call *c = u->ready_head;
        ready_unlink(u, c);
        fn(c, ctx);
        /* a finished call the owner did not cancel is released here */
        if (c->done && !c->cancelled) es_sv_call_cancel(c);
    }
    u->in_dispatch = 0;
    while (u->dead) {
        es_sv_call *d = u->dead;
        u->dead = d->next;
        call_free(d);
    }
}
