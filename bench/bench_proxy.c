/* bench_proxy.c - load on `earlystop proxy`: N concurrent streams for D
 * seconds, what the proxy adds to each streamed chunk, and what it costs.
 *
 *   build/bench/bench_proxy [--streams N] [--seconds D] [--interval-ms I] [--tokens L]
 *                           [--policy SPEC] [--probe-every P] [--bin PATH] [--rounds R]
 *
 * A mock upstream in this process (libmicrohttpd, a thread per connection)
 * streams completions: L tokens, one per chunk every I ms, each token's text
 * carrying the microsecond it was sent (CLOCK_MONOTONIC), with usage and
 * logprobs in every chunk as vLLM sends them; probes (non-streamed requests)
 * answer "42." at once.  The load client (libcurl multi, one thread) keeps N
 * streams open, restarting each as it ends, and reads every chunk's delay
 * since it was sent.  Phases alternate (direct to the mock, through the
 * proxy) R times, so that a change in the machine's load hits both; the
 * proxy's added delay per chunk is the difference of the two delays'
 * percentiles.  The proxy's CPU (user + system from /proc) is divided by the
 * tokens it relayed to clients and by the tokens it read from upstream.
 * Every response must be a 200 ending in [DONE], with every token
 * accounted; the proxy must exit 0 on SIGTERM (built with ASan: no leak).
 * Exit status 1 on any error.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "earlystop_serve.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long long now_us(void) { return (long long)(now_s() * 1e6); }

/* ------------------------------------------------------------ the mock */

static int g_interval_ms = 20, g_tokens = 100;

typedef struct mreq {
    char *body;
    size_t n;
    int stream, max_tokens, sent;
    double t0;
    int done;
} mreq;

static ssize_t mock_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    mreq *r = cls;
    if (r->done) return MHD_CONTENT_READER_END_OF_STREAM;
    int L = r->max_tokens > 0 && r->max_tokens < g_tokens ? r->max_tokens : g_tokens;
    if (r->sent == L) {
        r->done = 1;
        if (max < 16) return 0;
        memcpy(buf, "data: [DONE]\n\n", 14);
        return 14;
    }
    double due = r->t0 + (r->sent + 1) * g_interval_ms / 1000.0, t = now_s();
    if (due > t) {
        struct timespec ts = {(time_t)(due - t), (long)((due - t - (double)(time_t)(due - t)) * 1e9)};
        nanosleep(&ts, NULL);
    }
    r->sent++;
    char tok[32];
    snprintf(tok, sizeof tok, " t%lld", now_us());
    int n = snprintf(buf, max,
                     "data: {\"id\":\"m\",\"object\":\"text_completion\",\"model\":\"mock\",\"choices\":[{\"index\":0,"
                     "\"text\":\"%s\",\"logprobs\":{\"tokens\":[\"%s\"],\"token_logprobs\":[-0.1],\"top_logprobs\":[{}]},"
                     "\"finish_reason\":%s}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":%d,"
                     "\"total_tokens\":%d}}\n\n",
                     tok, tok, r->sent == L ? "\"length\"" : "null", r->sent, 10 + r->sent);
    return n > 0 && (size_t)n < max ? n : 0;
}

static void mock_free(void *cls)
{
    mreq *r = cls;
    free(r->body);
    free(r);
}

static enum MHD_Result mock_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                   const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
    (void)cls, (void)url, (void)method, (void)version;
    mreq *r = *req_cls;
    if (!r) {
        *req_cls = calloc(1, sizeof(mreq));
        return *req_cls ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        char *b = realloc(r->body, r->n + *upload_size + 1);
        if (!b) return MHD_NO;
        r->body = b;
        memcpy(r->body + r->n, upload, *upload_size);
        r->n += *upload_size;
        r->body[r->n] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    json_t *v = json_loadb(r->body ? r->body : "", r->n, 0, NULL);
    r->stream = json_is_true(json_object_get(v, "stream"));
    json_t *mt = json_object_get(v, "max_tokens");
    r->max_tokens = json_is_integer(mt) ? (int)json_integer_value(mt) : 0;
    json_t *p = json_object_get(v, "prompt");
    size_t plen = json_is_string(p) ? json_string_length(p) : 0;
    json_decref(v);
    *req_cls = NULL; /* the response owns it now */
    struct MHD_Response *resp;
    enum MHD_Result ok;
    if (r->stream) {
        r->t0 = now_s();
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, mock_read, r, mock_free);
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    } else {
        char body[512];
        int n = snprintf(body, sizeof body,
                         "{\"id\":\"p\",\"object\":\"text_completion\",\"model\":\"mock\",\"choices\":[{\"index\":0,"
                         "\"text\":\"42\",\"stop_reason\":\".\",\"finish_reason\":\"stop\",\"logprobs\":{\"tokens\":"
                         "[\"4\",\"2\",\".\"],\"token_logprobs\":[-0.1,-0.1,-0.1]}}],\"usage\":{\"prompt_tokens\":%zu,"
                         "\"completion_tokens\":3,\"total_tokens\":%zu}}",
                         plen, plen + 3);
        mock_free(r);
        resp = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
        MHD_add_response_header(resp, "Content-Type", "application/json");
    }
    ok = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ok;
}

static void mock_done(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    mreq *r = *req_cls;
    if (r) mock_free(r);
    *req_cls = NULL;
}

/* ------------------------------------------------------------ the client */

typedef struct lat {
    double *v;
    size_t n, cap;
} lat;

static void lat_add(lat *l, double x)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = x;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(lat *l, double p)
{
    if (!l->n) return NAN;
    qsort(l->v, l->n, sizeof *l->v, cmp_d);
    size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
    return l->v[i];
}

typedef struct stream {
    CURL *e;
    es_sse_reader *sse;
    lat *l;
    int done_seen, chunks;
    long long bytes;
} stream;

typedef struct phase {
    lat l;
    long long tokens, requests, errors;
} phase;

static phase *g_phase;

static int on_event(void *ctx, const char *event, const char *data, size_t len)
{
    (void)event;
    stream *s = ctx;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        s->done_seen = 1;
        return 0;
    }
    json_t *v = json_loadb(data, len, 0, NULL);
    if (!v) return -1;
    if (json_object_get(v, "error")) {
        json_decref(v);
        return -1;
    }
    json_t *ch = json_array_get(json_object_get(v, "choices"), 0);
    const char *t = json_string_value(json_object_get(ch, "text"));
    long long now = now_us();
    /* a chunk may carry several tokens (held back at a probe point): each
     * token's delay counts */
    for (const char *p = t ? strstr(t, " t") : NULL; p; p = strstr(p + 2, " t")) {
        long long sent = atoll(p + 2);
        if (sent > 0) {
            lat_add(s->l, (double)(now - sent) / 1000.0);
            g_phase->tokens++;
        }
    }
    json_decref(v);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    stream *s = ud;
    s->bytes += (long long)(size * n);
    return es_sse_reader_feed(s->sse, p, size * n, on_event, s) ? 0 : size * n;
}

static void stream_start(CURLM *m, stream *s, const char *url, const char *body, lat *l)
{
    if (s->e) {
        curl_multi_remove_handle(m, s->e);
        curl_easy_cleanup(s->e);
    }
    es_sse_reader_free(s->sse);
    memset(s, 0, sizeof *s);
    es_sse_reader_new(1 << 20, &s->sse);
    s->l = l;
    s->e = curl_easy_init();
    static struct curl_slist *h;
    if (!h) h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(s->e, CURLOPT_URL, url);
    curl_easy_setopt(s->e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(s->e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(s->e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->e, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(s->e, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(m, s->e);
}

/* N streams for `seconds`: each restarts as it ends; the last ones finish. */
static void run_phase(const char *url, int n, double seconds, phase *ph)
{
    g_phase = ph;
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)n + 8);
    stream *ss = calloc((size_t)n, sizeof *ss);
    const char *body = "{\"prompt\":\"Compute 1+2.\\n\",\"stream\":true,\"max_tokens\":100000}";
    for (int i = 0; i < n; i++) stream_start(m, &ss[i], url, body, &ph->l);
    double end = now_s() + seconds;
    int running = n;
    while (running > 0) {
        curl_multi_poll(m, NULL, 0, 100, NULL);
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            stream *s;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            ph->requests++;
            if (msg->data.result != CURLE_OK || status != 200 || !s->done_seen) {
                if (ph->errors < 5)
                    fprintf(stderr, "bench_proxy: stream error: %s, status %ld, [DONE] %s\n",
                            curl_easy_strerror(msg->data.result), status, s->done_seen ? "seen" : "missing");
                ph->errors++;
            }
            if (now_s() < end) {
                stream_start(m, s, url, body, &ph->l);
                running++;
            } else {
                curl_multi_remove_handle(m, s->e);
                curl_easy_cleanup(s->e);
                s->e = NULL;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (ss[i].e) {
            curl_multi_remove_handle(m, ss[i].e);
            curl_easy_cleanup(ss[i].e);
        }
        es_sse_reader_free(ss[i].sse);
    }
    free(ss);
    curl_multi_cleanup(m);
}

/* ------------------------------------------------------- the proxy child */

static pid_t start_proxy(const char *bin, int upstream_port, const char *policy, const char *every, int *port)
{
    int pfd[2];
    if (pipe(pfd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char up[64];
        snprintf(up, sizeof up, "http://127.0.0.1:%d", upstream_port);
        dup2(pfd[1], 1);
        close(pfd[0]);
        execl(bin, bin, "proxy", "--upstream", up, "--policy", policy, "--probe-every", every, "--port", "0",
              "--quiet", "--max-conns", "4096", "--max-upstream", "4096", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char buf[256] = "";
    ssize_t r = read(pfd[0], buf, sizeof buf - 1);
    close(pfd[0]);
    const char *colon = r > 0 ? strrchr(buf, ':') : NULL;
    *port = colon ? atoi(colon + 1) : 0;
    return *port ? pid : -1;
}

static double proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return NAN;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    /* fields after the name: state(3) ... utime(14) stime(15) */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return NAN;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The proxy's count of upstream completion tokens (from /metrics). */
static double proxy_upstream_tokens(int port)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    char *mem = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&mem, &n);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_perform(e);
    curl_easy_cleanup(e);
    fclose(f);
    const char *k = "earlystop_proxy_tokens_total{kind=\"completion\"} ";
    const char *p = mem ? strstr(mem, k) : NULL;
    double v = p ? atof(p + strlen(k)) : NAN;
    free(mem);
    return v;
}

int main(int argc, char **argv)
{
    int streams = 64, rounds = 2;
    double seconds = 8;
    const char *policy = "full", *every = "32";
    const char *bin = getenv("ES_BIN") ? getenv("ES_BIN") : "build/earlystop";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench_proxy [--streams N] [--seconds D] [--interval-ms I] [--tokens L]\n"
                   "                   [--policy SPEC] [--probe-every P] [--bin PATH] [--rounds R]\n"
                   "N concurrent streams (default 64) for D seconds (8) split into R rounds (2), each round\n"
                   "direct to an in-process mock upstream (a token every I ms (20), L tokens a stream (100))\n"
                   "then through `earlystop proxy --policy SPEC --probe-every P` (full, 32; binary PATH or\n"
                   "$ES_BIN, default build/earlystop). Prints the delay the proxy adds per chunk (p50, p99),\n"
                   "its CPU per 1,000 tokens and whether it exits cleanly; exit 1 on any error.\n");
            return 0;
        }
    if (argc % 2 == 0) {
        fprintf(stderr, "bench_proxy: %s needs a value (see --help)\n", argv[argc - 1]);
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--streams")) streams = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--interval-ms")) g_interval_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens")) g_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--policy")) policy = argv[i + 1];
        else if (!strcmp(argv[i], "--probe-every")) every = argv[i + 1];
        else if (!strcmp(argv[i], "--bin")) bin = argv[i + 1];
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_proxy: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (streams < 1 || rounds < 1 || !(seconds > 0) || g_interval_ms < 1 || g_tokens < 1) {
        fprintf(stderr, "bench_proxy: --streams, --rounds, --seconds, --interval-ms and --tokens must be positive\n");
        return 2;
    }
    if (access(bin, X_OK)) {
        fprintf(stderr, "bench_proxy: %s not found (set ES_BIN or --bin)\n", bin);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                                            NULL, mock_access, NULL, MHD_OPTION_NOTIFY_COMPLETED, mock_done, NULL,
                                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)8192, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bench_proxy: mock upstream did not start\n");
        return 1;
    }
    int mport = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port, pport = 0;
    pid_t pid = start_proxy(bin, mport, policy, every, &pport);
    if (pid < 0) {
        fprintf(stderr, "bench_proxy: proxy did not start\n");
        return 1;
    }
    char direct[96], proxied[96];
    snprintf(direct, sizeof direct, "http://127.0.0.1:%d/v1/completions", mport);
    snprintf(proxied, sizeof proxied, "http://127.0.0.1:%d/v1/completions", pport);
    phase ph[2];
    memset(ph, 0, sizeof ph);
    double cpu = 0, up0 = proxy_upstream_tokens(pport);
    printf("bench_proxy: %d streams, %d x %.1f s per side interleaved, a token every %d ms, %d tokens per stream, "
           "policy %s, proxy %s\n", streams, rounds, seconds / rounds, g_interval_ms, g_tokens, policy, bin);
    fflush(stdout);
    for (int r = 0; r < rounds; r++) {
        run_phase(direct, streams, seconds / rounds, &ph[0]);
        double c0 = proc_cpu(pid);
        run_phase(proxied, streams, seconds / rounds, &ph[1]);
        cpu += proc_cpu(pid) - c0;
    }
    double up = proxy_upstream_tokens(pport) - up0;
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    int exit_ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    MHD_stop_daemon(d);
    double d50 = pct(&ph[0].l, 0.5), d99 = pct(&ph[0].l, 0.99), p50 = pct(&ph[1].l, 0.5), p99 = pct(&ph[1].l, 0.99);
    printf("  direct:  %lld requests, %lld tokens, %lld errors; delay per chunk p50 %.3f ms, p99 %.3f ms\n",
           ph[0].requests, ph[0].tokens, ph[0].errors, d50, d99);
    printf("  proxied: %lld requests, %lld tokens, %lld errors; delay per chunk p50 %.3f ms, p99 %.3f ms\n",
           ph[1].requests, ph[1].tokens, ph[1].errors, p50, p99);
    printf("  added by the proxy per chunk: p50 %+.3f ms, p99 %+.3f ms\n", p50 - d50, p99 - d99);
    printf("  proxy CPU: %.2f s for %lld tokens relayed (%.1f ms per 1,000) and %.0f read from upstream (%.1f ms per "
           "1,000)\n",
           cpu, ph[1].tokens, ph[1].tokens ? 1e6 * cpu / (double)ph[1].tokens : NAN, up,
           up > 0 ? 1e6 * cpu / up : NAN);
    printf("  proxy exit on SIGTERM: %s\n", exit_ok ? "0 (clean)" : "FAILED");
    free(ph[0].l.v);
    free(ph[1].l.v);
    curl_global_cleanup();
    return ph[0].errors || ph[1].errors || !exit_ok ? 1 : 0;
}
