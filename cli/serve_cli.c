/* serve_cli.c - listening options, the stop pipe and the ready line of the
 * serving commands (serve, proxy). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve_cli.h"

static int stop_w = -1;

/* Only write(2) here: it is async-signal-safe. */
static void on_signal(int sig)
{
    (void)sig;
    if (stop_w >= 0) {
        char c = 1;
        ssize_t n = write(stop_w, &c, 1);
        (void)n;
    }
}

int serve_stop_pipe(void)
{
    int p[2];
    if (pipe(p)) return -1;
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    stop_w = p[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return p[0];
}

void serve_print_ready(void *ctx, const char *host, int port)
{
    const char *cmd = ctx;
    int v6 = strchr(host, ':') != NULL;
    printf("earlystop %s: listening on http://%s%s%s:%d\n", cmd, v6 ? "[" : "", host, v6 ? "]" : "", port);
    fflush(stdout);
}

/* The key from $EARLYSTOP_API_KEY unless --api-key gave one; a server that
 * listens beyond this machine without a key says so (anyone who reaches the
 * port can spend the engine's tokens), but starts: a trusted network or a
 * front that authenticates is a legitimate setup. */
void serve_key_from_env(const char *cmd, es_listen_opts *o)
{
    const char *k = getenv("EARLYSTOP_API_KEY");
    if (!o->api_key && k && *k) o->api_key = k;
    const char *h = o->host ? o->host : "127.0.0.1";
    int loopback = !strcmp(h, "localhost") || !strcmp(h, "::1") || !strncmp(h, "127.", 4);
    if (!o->api_key && !loopback)
        fprintf(stderr, "earlystop %s: warning: listening on %s without an API key: anyone who reaches the port "
                "can use it (--api-key KEY or $EARLYSTOP_API_KEY)\n", cmd, h);
}

static int seconds_opt(const char *cmd, const char *name, const char *v, double *out)
{
    if (cli_parse_double(v, out) || *out <= 0 || *out > 86400)
        return cli_usage_error(cmd, "%s: '%s' is not a number of seconds in (0, 86400]", name, v), -1;
    return 1;
}

int serve_listen_opt(const char *cmd, int argc, char **argv, int *i, es_listen_opts *o)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--quiet")) {
        o->log = NULL;
        return 1;
    }
    static const char *const takes[] = {"--host", "--port", "--api-key", "--max-body", "--max-header",
                                        "--header-timeout", "--body-timeout", "--idle-timeout", "--max-conns"};
    int known = 0;
    for (size_t k = 0; k < sizeof takes / sizeof takes[0]; k++) known |= !strcmp(a, takes[k]);
    if (!known) return 0;
    if (*i + 1 >= argc) return cli_usage_error(cmd, "%s needs a value", a), -1;
    const char *v = argv[++*i];
    long n;
    uint64_t sz;
    double d;
    if (!strcmp(a, "--host")) {
        if (!*v) return cli_usage_error(cmd, "--host: empty address"), -1;
        o->host = v;
    } else if (!strcmp(a, "--port")) {
        if (cli_parse_long(v, 0, 65535, &n)) return cli_usage_error(cmd, "--port: '%s' is not a port (0..65535; 0 = any free one)", v), -1;
        o->port = (int)n;
    } else if (!strcmp(a, "--api-key")) {
        if (!*v) return cli_usage_error(cmd, "--api-key: empty key"), -1;
        o->api_key = v;
    } else if (!strcmp(a, "--max-body")) {
        if (cli_parse_size(v, 1024, 1ULL << 32, &sz)) return cli_usage_error(cmd, "--max-body: '%s' is not a size in 1K..4G", v), -1;
        o->max_body = (size_t)sz;
    } else if (!strcmp(a, "--max-header")) {
        if (cli_parse_size(v, 1024, 1ULL << 24, &sz)) return cli_usage_error(cmd, "--max-header: '%s' is not a size in 1K..16M", v), -1;
        o->max_header = (size_t)sz;
    } else if (!strcmp(a, "--header-timeout")) {
        if (seconds_opt(cmd, a, v, &o->header_timeout) < 0) return -1;
    } else if (!strcmp(a, "--body-timeout")) {
        if (seconds_opt(cmd, a, v, &o->body_timeout) < 0) return -1;
    } else if (!strcmp(a, "--idle-timeout")) {
        if (seconds_opt(cmd, a, v, &d) < 0) return -1;
        o->idle_timeout = (unsigned)(d + 0.999);
    } else {
        if (cli_parse_long(v, 1, 1000000, &n)) return cli_usage_error(cmd, "--max-conns: '%s' is not in 1..1000000", v), -1;
        o->max_conns = (unsigned)n;
    }
    return 1;
}

void serve_listen_help(FILE *fp, int port)
{
    fprintf(fp,
            "  --host ADDR          address to listen on (default 127.0.0.1: this machine only;\n"
            "                       0.0.0.0 or :: to serve others, then give --api-key)\n"
            "  --port N             port (default %d; 0 = any free port, printed at start)\n"
            "  --api-key KEY        clients must send 'Authorization: Bearer KEY' (default:\n"
            "                       $EARLYSTOP_API_KEY, else none)\n"
            "  --max-body SIZE      largest request body (default 1M): larger gets 413\n"
            "  --max-header SIZE    largest request head (default 16K): larger gets 431\n"
            "  --header-timeout S   seconds a client has to send a request head (default 10)\n"
            "  --body-timeout S     seconds to send the body after the head (default 30)\n"
            "  --idle-timeout S     seconds of silence before a connection is closed (default 60)\n"
            "  --max-conns N        connections at once (default 1024)\n"
            "  --quiet              no access log on stderr\n",
            port);
}
