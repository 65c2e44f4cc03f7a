/*
 * mock_upstream.h - an upstream that misbehaves on purpose, for the proxy's
 * failure tests: it hangs, dies mid-stream, streams garbage, answers an error
 * status, or is not HTTP at all.  One thread, raw sockets, one connection at a
 * time.  Header-only.
 */
#ifndef ES_TEST_MOCK_UPSTREAM_H
#define ES_TEST_MOCK_UPSTREAM_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum mock_mode {
    MOCK_HANG,        /* reads the request, never answers */
    MOCK_DIE,         /* starts a stream, then closes without a finish_reason */
    MOCK_GARBAGE,     /* a stream whose events are not JSON */
    MOCK_STATUS,      /* 429 with an OpenAI error object */
    MOCK_NOT_HTTP,    /* bytes that are no HTTP response */
    MOCK_NOT_SSE      /* 200 with a JSON body where a stream was asked for */
} mock_mode;

typedef struct mock_upstream {
    int fd, port;
    _Atomic int mode, stop;
    pthread_t th;
    int held[64];
    int n_held;
    _Atomic int served;
} mock_upstream;

static void mock_send(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void mock_answer(mock_upstream *m, int c)
{
    char buf[65536];
    size_t got = 0;
    /* the head and what body arrives within 200 ms */
    for (int i = 0; i < 20 && got < sizeof buf - 1; i++) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 10) <= 0) {
            if (strstr(buf, "\r\n\r\n")) break;
            continue;
        }
        ssize_t r = recv(c, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
        buf[got] = '\0';
    }
    atomic_fetch_add(&m->served, 1);
    switch ((mock_mode)atomic_load(&m->mode)) {
    case MOCK_HANG:
        if (m->n_held < 64) {
            m->held[m->n_held++] = c;
            return;
        }
        break;
    case MOCK_DIE:
        /* a stream under way (the client has seen it start), then cut mid-event */
        mock_send(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                     "data: {\"choices\":[{\"index\":0,\"text\":\"7+6\",\"finish_reason\":null}]}\n\n");
        usleep(300000);
        mock_send(c, "data: {\"choices\":[{\"index\":0,\"text\":\"=13\",\"finish_reason\":null}]}\n\ndata: {\"choi");
        break;
    case MOCK_GARBAGE:
        mock_send(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                     "data: this is not json\n\n");
        break;
    case MOCK_STATUS:
        mock_send(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 71\r\n"
                     "Connection: close\r\n\r\n"
                     "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\",\"code\":null}}\n");
        break;
    case MOCK_NOT_HTTP:
        mock_send(c, "hello, this is not HTTP\r\n\r\n");
        break;
    case MOCK_NOT_SSE:
        mock_send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        break;
    }
    close(c);
}

static void *mock_main(void *arg)
{
    mock_upstream *m = arg;
    while (!atomic_load(&m->stop)) {
        struct pollfd p = {m->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(m->fd, NULL, NULL);
        if (c >= 0) mock_answer(m, c);
    }
    for (int i = 0; i < m->n_held; i++) close(m->held[i]);
    return NULL;
}

static inline int mock_start(mock_upstream *m, mock_mode mode)
{
    memset(m, 0, sizeof *m);
    atomic_store(&m->mode, mode);
    m->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(m->fd, (struct sockaddr *)&a, sizeof a) || listen(m->fd, 64) ||
        getsockname(m->fd, (struct sockaddr *)&a, &len))
        return -1;
    m->port = ntohs(a.sin_port);
    return pthread_create(&m->th, NULL, mock_main, m) ? -1 : 0;
}

static inline void mock_stop(mock_upstream *m)
{
    atomic_store(&m->stop, 1);
    pthread_join(m->th, NULL);
    close(m->fd);
}

#endif
