/*
 * srvrun.h - running `earlystop serve` / `earlystop proxy` from a test: start
 * one on a free port (it prints "listening on http://HOST:PORT"), talk to it
 * with libcurl, stop it with SIGTERM and check that it exited cleanly (under
 * ASan that is also the leak check).  Header-only; include after <cmocka.h>.
 */
#ifndef ES_TEST_SRVRUN_H
#define ES_TEST_SRVRUN_H

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A shell line made printf-style: its exit status, -1 when it did not exit. */
static inline int srv_sh(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static inline int srv_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

typedef struct srv_proc {
    pid_t pid;
    int port;
    char url[64];
    char log[400];   /* its stderr */
} srv_proc;

static const char *srv_bin(void)
{
    const char *b = getenv("ES_BIN");
    return b && *b ? b : "build/earlystop";
}

/* argv without the binary; "--port 0" is added.  0 ok, -1 when it did not
 * come up within 30 s (its stderr is printed). */
static inline int srv_start(srv_proc *s, const char *const *args, const char *logdir)
{
    int pfd[2];
    if (pipe(pfd)) return -1;
    static int serial;
    snprintf(s->log, sizeof s->log, "%s/srv-%d-%d.log", logdir, (int)getpid(), serial++);
    s->pid = fork();
    if (s->pid == 0) {
        const char *argv[64];
        int n = 0;
        argv[n++] = srv_bin();
        for (int i = 0; args[i] && n < 60; i++) argv[n++] = args[i];
        argv[n++] = "--port";
        argv[n++] = "0";
        argv[n] = NULL;
        dup2(pfd[1], 1);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 2);
        close(pfd[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    char buf[512];
    size_t got = 0;
    s->port = 0;
    double t0 = (double)time(NULL);
    while (!s->port && (double)time(NULL) - t0 < 30) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (poll(&p, 1, 500) <= 0) continue;
        ssize_t r = read(pfd[0], buf + got, sizeof buf - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        buf[got] = '\0';
        const char *m = strstr(buf, "listening on http://");
        const char *colon = m ? strrchr(m, ':') : NULL;
        if (colon && strchr(colon, '\n')) s->port = atoi(colon + 1);
    }
    close(pfd[0]);
    if (!s->port) {
        fprintf(stderr, "server did not start: %s\n", buf);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "cat '%s' >&2", s->log);
        if (system(cmd)) {}
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        return -1;
    }
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    return 0;
}

/* SIGTERM, then its exit status (-1 when it had to be killed). */
static inline int srv_stop(srv_proc *s)
{
    if (s->pid <= 0) return 0;
    kill(s->pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 300; i++) {
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->pid = 0;
            if (!WIFEXITED(st) || WEXITSTATUS(st)) {
                char cmd[600];
                snprintf(cmd, sizeof cmd, "tail -40 '%s' >&2", s->log);
                if (system(cmd)) {}
            }
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(100000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

typedef struct http_resp {
    long status;
    char *body;
    size_t n;
} http_resp;

static size_t http_sink(char *p, size_t size, size_t n, void *ud)
{
    http_resp *r = ud;
    char *b = realloc(r->body, r->n + size * n + 1);
    if (!b) return 0;
    r->body = b;
    memcpy(r->body + r->n, p, size * n);
    r->n += size * n;
    r->body[r->n] = '\0';
    return size * n;
}

/* POST (body non-NULL) or GET; extra: one header line or NULL.  Returns
 * curl's code; r->body is always a string (caller frees). */
static inline CURLcode http_call(const char *url, const char *body, const char *extra, long timeout_s, http_resp *r)
{
    memset(r, 0, sizeof *r);
    r->body = calloc(1, 1);
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (extra) h = curl_slist_append(h, extra);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (body) curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_sink);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return rc;
}

#endif
