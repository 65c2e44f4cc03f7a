/* test_proxy.c - `earlystop serve` behind `earlystop proxy`, end to end.
 *
 * The proxy's decisions are the replay's: a trace recorded with `earlystop
 * generate --seed S` and replayed by `earlystop eval --decisions` gives, per
 * question, the samples drawn, the tokens up to each stop, the probes' cost
 * and the answer; the same questions asked through the proxy (seed
 * S * 2^20 + j * 2^10: generate's streams, see es_serve_seed_stream) must
 * give the same four figures, for within and across rules, token budgets and
 * rounds, streamed or not.  Then what a client and an upstream can do wrong:
 * malformed or oversized bodies, slow heads, an upstream that hangs, dies
 * mid-stream, sends garbage or errors.  Servers are stopped with SIGTERM and
 * must exit 0 (under ASan: no leak). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "mock_upstream.h"
#include "srvrun.h"

static char tmp[256];
static srv_proc serve;

static int model_present(void)
{
    if (access("data/model.bin", R_OK) == 0 && access(srv_bin(), X_OK) == 0) return 1;
    print_message("no data/model.bin or %s: skipping\n", srv_bin());
    return 0;
}

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmp, sizeof tmp, "/tmp/es_test_proxy_XXXXXX");
    if (!mkdtemp(tmp)) return -1;
    if (!model_present()) return 0;
    const char *args[] = {"serve", "--quiet", "--max-seqs", "16", NULL};
    return srv_start(&serve, args, tmp);
}

static int teardown(void **state)
{
    (void)state;
    int rc = srv_stop(&serve);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) {}
    curl_global_cleanup();
    return rc;
}

static json_t *post_json(const char *url, const char *path, json_t *body, long *status)
{
    char u[256];
    snprintf(u, sizeof u, "%s%s", url, path);
    char *b = json_dumps(body, JSON_COMPACT);
    http_resp r;
    CURLcode rc = http_call(u, b, NULL, 120, &r);
    free(b);
    assert_int_equal(rc, CURLE_OK);
    *status = r.status;
    json_t *v = json_loads(r.body, 0, NULL);
    if (!v) print_message("not JSON (%ld): %s\n", r.status, r.body);
    free(r.body);
    return v;
}

/* A streamed request's chunks put back together: per choice its text, the
 * finish reasons, and the earlystop summary. */
static json_t *post_stream(const char *url, const char *path, json_t *body, char texts[][2048], int k)
{
    char u[256];
    snprintf(u, sizeof u, "%s%s", url, path);
    json_object_set_new(body, "stream", json_true());
    json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    char *b = json_dumps(body, JSON_COMPACT);
    http_resp r;
    assert_int_equal(http_call(u, b, NULL, 120, &r), CURLE_OK);
    free(b);
    assert_int_equal(r.status, 200);
    json_t *summary = NULL;
    int done = 0;
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        assert_true(!strncmp(line, "data: ", 6));
        if (!strcmp(line + 6, "[DONE]")) {
            done = 1;
            continue;
        }
        json_t *c = json_loads(line + 6, 0, NULL);
        assert_non_null(c);
        json_t *es = json_object_get(c, "earlystop");
        if (es) summary = json_incref(es);
        size_t i;
        json_t *ch;
        json_array_foreach(json_object_get(c, "choices"), i, ch) {
            int idx = (int)json_integer_value(json_object_get(ch, "index"));
            assert_true(idx >= 0 && idx < k);
            json_t *t = json_object_get(ch, "text");
            if (!t) t = json_object_get(json_object_get(ch, "delta"), "content");
            if (json_is_string(t)) strncat(texts[idx], json_string_value(t), 2047 - strlen(texts[idx]));
        }
        json_decref(c);
    }
    assert_true(done);
    free(r.body);
    return summary;
}

typedef struct task_case {
    const char *task, *type;
} task_case;

static const task_case tasks[] = {{"arithmetic", "number"}, {"date", "date"}, {"last_letters", "text"}};
static const char *const policies[] = {"dynasor:k=2+ac-beta", "deer:threshold=0.9+esc:window=3",
                                       "budget:tokens=40+majority", "convergence:m=2,every=2+margin:m=2", "full"};
enum { ITEMS = 5, SAMPLES = 5, EVERY = 16, SEED = 3 };

/* One task: its trace, eval's decisions per policy, the proxy's answers. */
static void check_task(const task_case *tc)
{
    char trace[512], dec[512];
    snprintf(trace, sizeof trace, "%s/%s.jsonl", tmp, tc->task);
    assert_int_equal(srv_sh("'%s' generate --task %s --items %d --samples %d --probe-every %d --seed %d --out '%s' >/dev/null",
                        srv_bin(), tc->task, ITEMS, SAMPLES, EVERY, SEED, trace), 0);
    char up[80], every[16];
    snprintf(up, sizeof up, "%s", serve.url);
    snprintf(every, sizeof every, "%d", EVERY);
    const char *args[] = {"proxy", "--quiet", "--upstream", up, "--probe-every", every, "--answer-type", tc->type, NULL};
    srv_proc px;
    assert_int_equal(srv_start(&px, args, tmp), 0);
    json_error_t je;
    json_t *items[ITEMS];
    FILE *fp = fopen(trace, "r");
    char line[1 << 16];
    assert_non_null(fgets(line, sizeof line, fp)); /* header */
    for (int j = 0; j < ITEMS; j++) {
        assert_non_null(fgets(line, sizeof line, fp));
        items[j] = json_loads(line, 0, &je);
        assert_non_null(items[j]);
    }
    fclose(fp);
    int compared = 0, stopped_samples = 0, fewer = 0;
    long full_tokens = 0; /* every sample to its end: what the savings are against */
    for (int j = 0; j < ITEMS; j++)
        for (size_t i = 0; i < json_array_size(json_object_get(items[j], "samples")); i++)
            full_tokens += (long)json_integer_value(json_object_get(json_array_get(json_object_get(items[j], "samples"), i), "tokens"));
    for (size_t p = 0; p < sizeof policies / sizeof policies[0]; p++) {
        long spent = 0, right = 0; /* the proxy's tokens (to the stops + probes), answers equal to gold */
        snprintf(dec, sizeof dec, "%s/dec.jsonl", tmp);
        assert_int_equal(srv_sh("'%s' eval '%s' --policy '%s' --decisions '%s' --no-oracle >/dev/null 2>&1", srv_bin(), trace,
                            policies[p], dec), 0);
        /* eval's rows: the baseline full first, then the policy */
        json_t *want[ITEMS] = {0};
        fp = fopen(dec, "r");
        int row = 0;
        while (fgets(line, sizeof line, fp)) {
            json_t *d = json_loads(line, 0, &je);
            int is_full = !strncmp(json_string_value(json_object_get(d, "policy")), "full", 4);
            if ((!strcmp(policies[p], "full")) == is_full && row < 2 * ITEMS) {
                const char *id = json_string_value(json_object_get(d, "id"));
                for (int j = 0; j < ITEMS; j++)
                    if (!strcmp(id, json_string_value(json_object_get(items[j], "id")))) {
                        json_decref(want[j]);
                        want[j] = json_incref(d);
                    }
            }
            json_decref(d);
            row++;
        }
        fclose(fp);
        for (int j = 0; j < ITEMS; j++) {
            const char *q = json_string_value(json_object_get(items[j], "question"));
            char prompt[1024];
            snprintf(prompt, sizeof prompt, "%s\n", q);
            /* generate's streams and its token limit (the context less the probe room) */
            json_int_t seed = ((json_int_t)SEED << 20) + ((json_int_t)j << 10);
            int max_tokens = 256 - 32 - (1 + (int)strlen(prompt));
            json_t *body = json_pack("{s:s,s:i,s:I,s:i,s:f,s:{s:s}}", "prompt", prompt, "n", SAMPLES, "seed", seed,
                                     "max_tokens", max_tokens, "temperature", 1.0, "earlystop", "policy", policies[p]);
            long st;
            json_t *r = post_json(px.url, "/v1/completions", body, &st);
            assert_int_equal(st, 200);
            json_t *es = json_object_get(r, "earlystop"), *w = want[j];
            assert_non_null(w);
            long samples = (long)json_integer_value(json_object_get(es, "samples"));
            if (samples != json_integer_value(json_object_get(w, "samples")) ||
                json_integer_value(json_object_get(es, "tokens_at_stop")) != json_integer_value(json_object_get(w, "tokens")) ||
                json_integer_value(json_object_get(es, "probe_tokens")) != json_integer_value(json_object_get(w, "probe_tokens")) ||
                !json_equal(json_object_get(es, "answer"), json_object_get(w, "answer"))) {
                char *a = json_dumps(es, JSON_COMPACT), *b = json_dumps(w, JSON_COMPACT);
                print_message("%s %s item %d:\n  proxy %s\n  eval  %s\n", tc->task, policies[p], j, a, b);
                free(a);
                free(b);
                fail();
            }
            assert_int_equal(json_array_size(json_object_get(r, "choices")), (size_t)samples);
            spent += (long)(json_integer_value(json_object_get(es, "tokens_at_stop")) + json_integer_value(json_object_get(es, "probe_tokens")));
            right += json_equal(json_object_get(es, "answer"), json_object_get(items[j], "gold"));
            stopped_samples += (int)json_integer_value(json_object_get(es, "samples_stopped"));
            fewer += samples < SAMPLES;
            /* streamed: the same texts and the same summary */
            if (j == 0) {
                char texts[SAMPLES][2048];
                memset(texts, 0, sizeof texts);
                json_t *s = post_stream(px.url, "/v1/completions", body, texts, SAMPLES);
                assert_non_null(s);
                assert_true(json_equal(json_object_get(s, "answer"), json_object_get(es, "answer")));
                assert_true(json_equal(json_object_get(s, "tokens_at_stop"), json_object_get(es, "tokens_at_stop")));
                for (long i = 0; i < samples; i++)
                    assert_string_equal(texts[i], json_string_value(json_object_get(json_array_get(json_object_get(r, "choices"), (size_t)i), "text")));
                json_decref(s);
            }
            compared++;
            json_decref(body);
            json_decref(r);
            json_decref(w);
        }
        print_message("%-12s %-36s proxy = replay on %d items: %ld tokens (probes included) of %ld drawn in full "
                      "(%.1f%% saved), %ld/%d answers right\n",
                      tc->task, policies[p], ITEMS, spent, full_tokens, 100.0 * (1.0 - (double)spent / (double)full_tokens),
                      right, ITEMS);
    }
    for (int j = 0; j < ITEMS; j++) json_decref(items[j]);
    /* the policies did stop: within (samples cut) and across (fewer samples) */
    assert_true(stopped_samples > 0);
    assert_true(fewer > 0);
    assert_int_equal(compared, ITEMS * (int)(sizeof policies / sizeof policies[0]));
    assert_int_equal(srv_stop(&px), 0);
}

static void test_proxy_equals_replay(void **state)
{
    (void)state;
    if (!serve.pid) skip();
    for (size_t t = 0; t < sizeof tasks / sizeof tasks[0]; t++) check_task(&tasks[t]);
}

/* `earlystop record` from serve writes generate's trace again: answers,
 * tokens, texts, probes (at, answer, cost) equal, confidences to float
 * rounding. */
static void test_record_equals_generate(void **state)
{
    (void)state;
    if (!serve.pid) skip();
    char trace[512], q[512], rec[512];
    snprintf(trace, sizeof trace, "%s/gen.jsonl", tmp);
    snprintf(q, sizeof q, "%s/q.jsonl", tmp);
    snprintf(rec, sizeof rec, "%s/rec.jsonl", tmp);
    assert_int_equal(srv_sh("'%s' generate --task date --items 4 --samples 3 --probe-every 16 --seed 21 --out '%s' >/dev/null",
                        srv_bin(), trace), 0);
    FILE *in = fopen(trace, "r"), *out = fopen(q, "w");
    char line[1 << 16];
    json_t *gen[5];
    int n = 0;
    while (fgets(line, sizeof line, in) && n < 5) {
        gen[n] = json_loads(line, 0, NULL);
        if (n) {
            const char *qs = json_string_value(json_object_get(gen[n], "question"));
            json_t *v = json_pack("{s:O,s:s,s:O,s:O,s:i}", "id", json_object_get(gen[n], "id"), "question", qs, "gold",
                                  json_object_get(gen[n], "gold"), "answer_type", json_object_get(gen[n], "answer_type"),
                                  "max_tokens", 256 - 32 - (1 + (int)strlen(qs) + 1));
            char *t = json_dumps(v, JSON_COMPACT);
            fprintf(out, "%s\n", t);
            free(t);
            json_decref(v);
        }
        n++;
    }
    fclose(in);
    fclose(out);
    assert_int_equal(n, 5);
    assert_int_equal(srv_sh("'%s' record --upstream %s --questions '%s' --samples 3 --probe-every 16 --seed %lld "
                        "--temperature 1 --out '%s' 2>/dev/null", srv_bin(), serve.url, q, 21LL << 20, rec), 0);
    in = fopen(rec, "r");
    assert_non_null(fgets(line, sizeof line, in));
    for (int j = 1; j < 5; j++) {
        assert_non_null(fgets(line, sizeof line, in));
        json_t *r = json_loads(line, 0, NULL);
        json_t *gs = json_object_get(gen[j], "samples"), *rs = json_object_get(r, "samples");
        assert_int_equal(json_array_size(gs), json_array_size(rs));
        for (size_t i = 0; i < json_array_size(gs); i++) {
            json_t *a = json_array_get(gs, i), *b = json_array_get(rs, i);
            assert_true(json_equal(json_object_get(a, "answer"), json_object_get(b, "answer")));
            assert_true(json_equal(json_object_get(a, "tokens"), json_object_get(b, "tokens")));
            assert_true(json_equal(json_object_get(a, "text"), json_object_get(b, "text")));
            json_t *pa = json_object_get(a, "probes"), *pb = json_object_get(b, "probes");
            assert_int_equal(json_array_size(pa), json_array_size(pb));
            for (size_t k = 0; k < json_array_size(pa); k++) {
                json_t *x = json_array_get(pa, k), *y = json_array_get(pb, k);
                assert_true(json_equal(json_object_get(x, "at"), json_object_get(y, "at")));
                assert_true(json_equal(json_object_get(x, "answer"), json_object_get(y, "answer")));
                assert_true(json_equal(json_object_get(x, "cost"), json_object_get(y, "cost")));
                assert_float_equal(json_number_value(json_object_get(x, "confidence")),
                                   json_number_value(json_object_get(y, "confidence")), 1e-4);
            }
        }
        json_decref(r);
    }
    fclose(in);
    for (int j = 0; j < 5; j++) json_decref(gen[j]);
}

/* --------------------------------------------------------- bad input */

static void expect_error(const char *url, const char *body, const char *extra, long status, const char *param)
{
    http_resp r;
    assert_int_equal(http_call(url, body, extra, 30, &r), CURLE_OK);
    if (r.status != status) print_message("%s <- %.200s: %ld %s\n", url, body ? body : "GET", r.status, r.body);
    assert_int_equal(r.status, status);
    json_t *v = json_loads(r.body, 0, NULL);
    json_t *e = json_object_get(v, "error");
    assert_true(json_is_object(e));
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_true(json_is_string(json_object_get(e, "type")));
    if (param) assert_string_equal(json_string_value(json_object_get(e, "param")), param);
    json_decref(v);
    free(r.body);
}

static void bad_bodies(const char *base)
{
    char u[256];
    snprintf(u, sizeof u, "%s/v1/chat/completions", base);
    expect_error(u, "{\"messages\": [", NULL, 400, NULL);
    expect_error(u, "[1,2]", NULL, 400, NULL);
    expect_error(u, "{}", NULL, 400, "messages");
    expect_error(u, "{\"messages\":\"hi\"}", NULL, 400, "messages");
    expect_error(u, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":\"2\"}", NULL, 400, "n");
    expect_error(u, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-3}", NULL, 400, "max_tokens");
    expect_error(u, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":9}", NULL, 400, "temperature");
    expect_error(u, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[1]}", NULL, 400, "stop");
    expect_error(u, "{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", NULL, 400, "messages[0]");
    expect_error(u, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":1}", NULL, 400, "stream");
    expect_error(u, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":1,\"n\":2}", NULL, 400, NULL);
    snprintf(u, sizeof u, "%s/v1/completions", base);
    expect_error(u, "{\"prompt\":[1,2,3]}", NULL, 400, "prompt");
    expect_error(u, "{\"prompt\":\"x\",\"logprobs\":99}", NULL, 400, "logprobs");
    /* 2 MiB: over the 1 MiB default, refused from its Content-Length */
    size_t big = 2u << 20;
    char *huge = malloc(big + 64);
    memset(huge, ' ', big + 63);
    memcpy(huge, "{\"prompt\":\"", 11);
    memcpy(huge + big + 50, "\"}", 3);
    expect_error(u, huge, NULL, 413, NULL);
    /* the same without a Content-Length (chunked) */
    expect_error(u, huge, "Transfer-Encoding: chunked", 413, NULL);
    free(huge);
    /* a head over the 16 KiB limit */
    char *hdr = malloc(20000);
    snprintf(hdr, 20000, "X-Filler: ");
    memset(hdr + 10, 'a', 18000);
    hdr[18010] = '\0';
    expect_error(u, "{\"prompt\":\"x\"}", hdr, 431, NULL);
    free(hdr);
    snprintf(u, sizeof u, "%s/v1/nothing", base);
    expect_error(u, "{}", NULL, 404, NULL);
    snprintf(u, sizeof u, "%s/v1/completions", base);
    expect_error(u, NULL, NULL, 405, NULL);
}

static void test_bad_requests(void **state)
{
    (void)state;
    if (!serve.pid) skip();
    bad_bodies(serve.url);
    const char *args[] = {"proxy", "--quiet", "--upstream", serve.url, "--probe-every", "16", "--api-key", "sk-t", NULL};
    srv_proc px;
    assert_int_equal(srv_start(&px, args, tmp), 0);
    char u[256];
    snprintf(u, sizeof u, "%s/v1/completions", px.url);
    expect_error(u, "{\"prompt\":\"x\"}", NULL, 401, NULL);
    expect_error(u, "{\"prompt\":\"x\"}", "Authorization: Bearer sk-wrong", 401, NULL);
    /* the upstream's refusal is passed on with its status and its error */
    expect_error(u, "{\"prompt\":\"Compute 1+2.\\n\",\"top_p\":0.5}", "Authorization: Bearer sk-t", 400, "top_p");
    expect_error(u, "{\"prompt\":\"Compute 1+2.\\n\",\"model\":\"gpt-9\"}", "Authorization: Bearer sk-t", 404, "model");
    expect_error(u, "{\"prompt\":\"x\",\"earlystop\":{\"policy\":\"nonsense:k=1\"}}", "Authorization: Bearer sk-t", 400,
                 "earlystop.policy");
    expect_error(u, "{\"prompt\":\"x\",\"earlystop\":{\"policy\":\"@/etc/passwd\"}}", "Authorization: Bearer sk-t", 400,
                 "earlystop.policy");
    expect_error(u, "{\"prompt\":\"x\",\"earlystop\":{\"max_em_drop\":0.01}}", "Authorization: Bearer sk-t", 400,
                 "earlystop.max_em_drop");
    expect_error(u, "{\"prompt\":[\"a\",\"b\"]}", "Authorization: Bearer sk-t", 400, "prompt");
    /* health needs no key; the rest of the bad bodies behind the key */
    http_resp r;
    snprintf(u, sizeof u, "%s/healthz", px.url);
    assert_int_equal(http_call(u, NULL, NULL, 10, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(srv_stop(&px), 0);
}

/* A record whose every question fails upstream is a failure that says why
 * (terminal or not) and leaves the file of a previous run as it was; an
 * integer id names its question. */
static void test_record_upstream_down(void **state)
{
    (void)state;
    if (access(srv_bin(), X_OK)) skip();
    assert_int_equal(srv_sh("echo '{\"id\": 7, \"question\": \"Compute 1+2.\", \"gold\": \"3\"}' > '%s/down_q.jsonl' && "
                        "echo old > '%s/down.jsonl'", tmp, tmp), 0);
    assert_int_equal(srv_sh("'%s' record --upstream http://127.0.0.1:1 --questions '%s/down_q.jsonl' --out '%s/down.jsonl' "
                        ">/dev/null 2>'%s/down.err'", srv_bin(), tmp, tmp, tmp),
                     1);
    assert_int_equal(srv_sh("grep -q '^old$' '%s/down.jsonl'", tmp), 0);
    assert_int_equal(srv_sh("grep -q 'record: 7: left out: .*upstream failed' '%s/down.err'", tmp), 0);
    assert_int_equal(srv_sh("grep -q 'every question failed upstream' '%s/down.err'", tmp), 0);
}

/* Options of the controller without --controller are refused, not ignored. */
static void test_usage(void **state)
{
    (void)state;
    if (access(srv_bin(), X_OK)) skip();
    static const char *const opts[] = {"--controller-window 5", "--kv-bytes 4K"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(srv_sh("'%s' proxy --upstream http://127.0.0.1:1 %s >/dev/null 2>'%s/usage.err'", srv_bin(), opts[i],
                            tmp),
                         2);
        assert_int_equal(srv_sh("grep -q -- 'goes with --controller' '%s/usage.err'", tmp), 0);
    }
    /* beyond loopback without a key: a warning, and it still starts */
    srv_sh("timeout 2 '%s' proxy --upstream http://127.0.0.1:1 --host 0.0.0.0 --port 0 >'%s/open.out' 2>'%s/open.err'",
       srv_bin(), tmp, tmp);
    assert_int_equal(srv_sh("grep -q 'without an API key' '%s/open.err' && grep -q 'listening on' '%s/open.out'", tmp, tmp),
                     0);
    srv_sh("timeout 2 '%s' proxy --upstream http://127.0.0.1:1 --host 0.0.0.0 --port 0 --api-key k >/dev/null "
       "2>'%s/open.err'", srv_bin(), tmp);
    assert_int_not_equal(srv_sh("grep -q 'without an API key' '%s/open.err'", tmp), 0);
}

/* A client that sends its head a byte at a time is cut at --header-timeout,
 * and others are served meanwhile. */
static void test_slowloris(void **state)
{
    (void)state;
    if (!serve.pid) skip();
    const char *args[] = {"proxy", "--quiet", "--upstream", serve.url, "--header-timeout", "1", NULL};
    srv_proc px;
    assert_int_equal(srv_start(&px, args, tmp), 0);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)px.port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
        assert_true(send(fds[i], "POST /v1/completions HTTP/1.1\r\nHost: x\r\n", 41, MSG_NOSIGNAL) == 41);
    }
    const char *drip = "X-A: b\r\n";
    int closed = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int step = 0; step < 40 && closed < 8; step++) {
        usleep(100000);
        closed = 0;
        for (int i = 0; i < 8; i++) {
            char buf[4096];
            ssize_t r;
            while ((r = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT)) > 0) {}
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed++;
            else send(fds[i], drip + step % 8, 1, MSG_NOSIGNAL);
        }
        if (step == 3) {
            http_resp r;
            char u[256];
            snprintf(u, sizeof u, "%s/healthz", px.url);
            assert_int_equal(http_call(u, NULL, NULL, 5, &r), CURLE_OK);
            assert_int_equal(r.status, 200);
            free(r.body);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    assert_int_equal(closed, 8);
    assert_true(s < 3.5);
    for (int i = 0; i < 8; i++) close(fds[i]);
    assert_int_equal(srv_stop(&px), 0);
}

/* ------------------------------------------------------- bad upstreams */

static void upstream_case(mock_mode mode, int stream, long want_status, const char *want_type)
{
    mock_upstream m;
    int refused = (int)mode < 0;
    char up[64];
    if (!refused) {
        assert_int_equal(mock_start(&m, mode), 0);
        snprintf(up, sizeof up, "http://127.0.0.1:%d", m.port);
    } else {
        snprintf(up, sizeof up, "http://127.0.0.1:1");
    }
    const char *args[] = {"proxy", "--quiet", "--upstream", up, "--upstream-idle-timeout", "1", "--connect-timeout", "2",
                          "--policy", "ac-beta", NULL};
    srv_proc px;
    assert_int_equal(srv_start(&px, args, tmp), 0);
    char u[256];
    snprintf(u, sizeof u, "%s/v1/completions", px.url);
    http_resp r;
    assert_int_equal(http_call(u, stream ? "{\"prompt\":\"Compute 1+2.\\n\",\"stream\":true}" : "{\"prompt\":\"Compute 1+2.\\n\"}",
                               NULL, 30, &r),
                     CURLE_OK);
    if (r.status != want_status) print_message("mode %d stream %d: %ld %s\n", (int)mode, stream, r.status, r.body);
    assert_int_equal(r.status, want_status);
    /* an error object, as JSON or as the stream's last event */
    const char *js = strstr(r.body, "{\"error\"");
    assert_non_null(js);
    json_t *v = json_loadb(js, strcspn(js, "\n"), 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "type")), want_type);
    json_decref(v);
    if (stream && want_status == 200) assert_non_null(strstr(r.body, "data: [DONE]"));
    free(r.body);
    assert_int_equal(srv_stop(&px), 0);
    if (!refused) mock_stop(&m);
}

static void test_bad_upstreams(void **state)
{
    (void)state;
    if (access(srv_bin(), X_OK)) skip();
    upstream_case(MOCK_HANG, 0, 504, "upstream_error");
    upstream_case(MOCK_DIE, 0, 502, "upstream_error");
    upstream_case(MOCK_DIE, 1, 200, "upstream_error");
    upstream_case(MOCK_GARBAGE, 0, 502, "upstream_error");
    upstream_case(MOCK_GARBAGE, 1, 502, "upstream_error");
    upstream_case(MOCK_STATUS, 0, 429, "rate_limit_error");
    upstream_case(MOCK_STATUS, 1, 429, "rate_limit_error");
    upstream_case(MOCK_NOT_HTTP, 0, 502, "upstream_error");
    upstream_case(MOCK_NOT_SSE, 1, 502, "upstream_error");
    upstream_case((mock_mode)-1, 0, 502, "upstream_error");
}

/* A GET through the proxy: the status, and the body as JSON. */
static json_t *get_json(const char *base, const char *path, const char *extra, long *status)
{
    char u[256];
    snprintf(u, sizeof u, "%s%s", base, path);
    http_resp r;
    assert_int_equal(http_call(u, NULL, extra, 30, &r), CURLE_OK);
    *status = r.status;
    json_t *v = json_loads(r.body, 0, NULL);
    if (!v) print_message("%s: not JSON (%ld): %s\n", path, r.status, r.body);
    free(r.body);
    assert_non_null(v);
    return v;
}

static const char *error_type(const json_t *v)
{
    return json_string_value(json_object_get(json_object_get(v, "error"), "type"));
}

/* GET /v1/models and /v1/models/{id} are the upstream's (a model name of its
 * own, behind a key the proxy sends, or the client's when the proxy has
 * none), the proxy's own key checked first; other methods are a 405, an
 * upstream down a 502, hanging a 504, its error status passed on. */
static void test_models(void **state)
{
    (void)state;
    if (!serve.pid) skip();
    const char *sargs[] = {"serve", "--quiet", "--max-seqs", "2", "--api-key", "sk-up", "--model-name", "m-test", NULL};
    srv_proc up;
    assert_int_equal(srv_start(&up, sargs, tmp), 0);
    const char *args[] = {"proxy", "--quiet", "--upstream", up.url, "--upstream-key", "sk-up", "--api-key", "sk-px", NULL};
    srv_proc px;
    assert_int_equal(srv_start(&px, args, tmp), 0);
    const char *key = "Authorization: Bearer sk-px";
    long st;
    json_t *v = get_json(px.url, "/v1/models", NULL, &st);
    assert_int_equal(st, 401);
    json_decref(v);
    v = get_json(px.url, "/v1/models", key, &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(v, "object")), "list");
    assert_int_equal(json_array_size(json_object_get(v, "data")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(v, "data"), 0), "id")), "m-test");
    json_decref(v);
    v = get_json(px.url, "/v1/models/m-test", key, &st);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(v, "id")), "m-test");
    assert_string_equal(json_string_value(json_object_get(v, "object")), "model");
    json_decref(v);
    /* the upstream's 404 and its error object; an id with a slash reaches it whole */
    v = get_json(px.url, "/v1/models/org%2Fname", key, &st);
    assert_int_equal(st, 404);
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "param")), "model");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(v, "error"), "message")), "org/name"));
    json_decref(v);
    char u[256];
    snprintf(u, sizeof u, "%s/v1/models", px.url);
    expect_error(u, "{}", key, 405, NULL);
    snprintf(u, sizeof u, "%s/v1/models/m-test", px.url);
    expect_error(u, "{}", key, 405, NULL);
    /* the 404 of an unknown route names the models routes */
    v = get_json(px.url, "/v1/nothing", key, &st);
    assert_int_equal(st, 404);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(v, "error"), "message")), "GET /v1/models"));
    json_decref(v);
    /* without an upstream key the client's Authorization goes upstream */
    const char *open_args[] = {"proxy", "--quiet", "--upstream", up.url, NULL};
    srv_proc po;
    assert_int_equal(srv_start(&po, open_args, tmp), 0);
    v = get_json(po.url, "/v1/models", "Authorization: Bearer sk-up", &st);
    assert_int_equal(st, 200);
    json_decref(v);
    v = get_json(po.url, "/v1/models", "Authorization: Bearer sk-wrong", &st);
    assert_int_equal(st, 401);
    assert_string_equal(error_type(v), "authentication_error");
    json_decref(v);
    assert_int_equal(srv_stop(&po), 0);
    /* the upstream gone: a 502 upstream_error, and the proxy keeps serving */
    assert_int_equal(srv_stop(&up), 0);
    v = get_json(px.url, "/v1/models", key, &st);
    assert_int_equal(st, 502);
    assert_string_equal(error_type(v), "upstream_error");
    json_decref(v);
    v = get_json(px.url, "/v1/models/m-test", key, &st);
    assert_int_equal(st, 502);
    json_decref(v);
    assert_int_equal(srv_stop(&px), 0);
    /* an upstream that hangs (504 at --upstream-idle-timeout), refuses (its 429), is not HTTP or not JSON (502) */
    static const struct { mock_mode mode; long status; const char *type; } bad[] = {
        {MOCK_HANG, 504, "upstream_error"}, {MOCK_STATUS, 429, "rate_limit_error"}, {MOCK_NOT_HTTP, 502, "upstream_error"},
        {MOCK_GARBAGE, 502, "upstream_error"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mock_upstream m;
        assert_int_equal(mock_start(&m, bad[i].mode), 0);
        char mu[64];
        snprintf(mu, sizeof mu, "http://127.0.0.1:%d", m.port);
        const char *margs[] = {"proxy", "--quiet", "--upstream", mu, "--upstream-idle-timeout", "1", NULL};
        assert_int_equal(srv_start(&px, margs, tmp), 0);
        v = get_json(px.url, "/v1/models", NULL, &st);
        if (st != bad[i].status) print_message("mode %d: %ld\n", (int)bad[i].mode, st);
        assert_int_equal(st, bad[i].status);
        assert_string_equal(error_type(v), bad[i].type);
        json_decref(v);
        assert_int_equal(srv_stop(&px), 0);
        mock_stop(&m);
    }
    /* a client that leaves while the upstream hangs: its call is dropped, the proxy serves on and exits clean */
    mock_upstream m;
    assert_int_equal(mock_start(&m, MOCK_HANG), 0);
    char mu[64];
    snprintf(mu, sizeof mu, "http://127.0.0.1:%d", m.port);
    const char *hargs[] = {"proxy", "--quiet", "--upstream", mu, NULL};
    assert_int_equal(srv_start(&px, hargs, tmp), 0);
    snprintf(u, sizeof u, "%s/v1/models", px.url);
    http_resp r;
    assert_int_equal(http_call(u, NULL, NULL, 1, &r), CURLE_OPERATION_TIMEDOUT);
    free(r.body);
    v = get_json(px.url, "/healthz", NULL, &st);
    assert_int_equal(st, 200);
    json_decref(v);
    assert_int_equal(srv_stop(&px), 0);
    mock_stop(&m);
}

/* Clients that leave mid-answer (streamed or not): the proxy drops their
 * upstream calls, keeps serving, and exits clean. */
static void test_clients_leave(void **state)
{
    (void)state;
    if (!serve.pid) skip();
    const char *args[] = {"proxy", "--quiet", "--upstream", serve.url, "--probe-every", "8", "--policy",
                          "dynasor:k=4+ac-beta", NULL};
    srv_proc px;
    assert_int_equal(srv_start(&px, args, tmp), 0);
    char u[256];
    snprintf(u, sizeof u, "%s/v1/completions", px.url);
    for (int i = 0; i < 12; i++) {
        CURL *e = curl_easy_init();
        http_resp r = {0, calloc(1, 1), 0};
        const char *body = i % 2 ? "{\"prompt\":\"Compute ((7+6)*3)-5.\\n\",\"n\":4,\"max_tokens\":200,\"stream\":true}"
                                 : "{\"prompt\":\"Compute ((7+6)*3)-5.\\n\",\"n\":4,\"max_tokens\":200}";
        curl_easy_setopt(e, CURLOPT_URL, u);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_sink);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 2L + 3L * i);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_perform(e);
        curl_easy_cleanup(e);
        free(r.body);
    }
    http_resp r;
    assert_int_equal(http_call(u, "{\"prompt\":\"Compute 1+2.\\n\",\"max_tokens\":50}", NULL, 60, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(srv_stop(&px), 0);
}

/* /metrics counts what went through. */
static void test_metrics(void **state)
{
    (void)state;
    if (!serve.pid) skip();
    const char *args[] = {"proxy", "--quiet", "--upstream", serve.url, "--probe-every", "16",
                          "--policy", "dynasor:k=2+ac-beta", "--answer-type", "number", NULL};
    srv_proc px;
    assert_int_equal(srv_start(&px, args, tmp), 0);
    char u[256];
    snprintf(u, sizeof u, "%s/v1/chat/completions", px.url);
    http_resp r;
    assert_int_equal(http_call(u, "{\"messages\":[{\"role\":\"user\",\"content\":\"Compute ((7+6)*3)-5.\"}],\"n\":3,\"seed\":1}",
                               NULL, 60, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    free(r.body);
    snprintf(u, sizeof u, "%s/metrics", px.url);
    assert_int_equal(http_call(u, NULL, NULL, 10, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "earlystop_proxy_requests_total{endpoint=\"chat\"} 1\n"));
    assert_non_null(strstr(r.body, "earlystop_proxy_samples_requested_total 3\n"));
    assert_non_null(strstr(r.body, "earlystop_proxy_policy_param{rule=\"ac-beta\",key=\"threshold\"} 0.95"));
    assert_non_null(strstr(r.body, "earlystop_proxy_request_seconds_count 1\n"));
    assert_non_null(strstr(r.body, "# TYPE earlystop_proxy_first_chunk_seconds histogram"));
    assert_null(strstr(r.body, "earlystop_proxy_probes_total 0\n"));
    free(r.body);
    snprintf(u, sizeof u, "%s/metrics", serve.url);
    assert_int_equal(http_call(u, NULL, NULL, 10, &r), CURLE_OK);
    assert_non_null(strstr(r.body, "earlystop_serve_completion_tokens_total"));
    free(r.body);
    assert_int_equal(srv_stop(&px), 0);
}

/* A metric's value in a Prometheus text body (the first line of that name
 * and labels); NAN when absent. */
static double metric(const char *body, const char *name)
{
    size_t n = strlen(name);
    for (const char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, name, n) && l[n] == ' ') return strtod(l + n + 1, NULL);
    return NAN;
}

static char *get_metrics(const char *base)
{
    char u[256];
    snprintf(u, sizeof u, "%s/metrics", base);
    http_resp r;
    assert_int_equal(http_call(u, NULL, NULL, 10, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    return r.body;
}

/* A learned stopper's file as the proxy's policy: its own weights and
 * thresholds decide, not the built-in stopper's.  The shipped file with its
 * first (0.1-point, default) threshold moved to either end: far below every score it stops
 * at its minimum of 2 samples, far above it draws until the vote is
 * clinched. */
static void test_stopper_file(void **state)
{
    (void)state;
    if (!serve.pid) skip();
    if (access("data/stopper.json", R_OK)) skip();
    double drawn[2];
    const char *ends[2] = {"-1000", "1000"};
    for (int e = 0; e < 2; e++) {
        char file[600], pol[640];
        snprintf(file, sizeof file, "%s/stopper%d.json", tmp, e);
        /* the first operating point is the 0.1-point one, the default */
        assert_int_equal(srv_sh("sed '0,/\"threshold\": [-+0-9.eE]*/s//\"threshold\": %s/' data/stopper.json > '%s' && "
                            "! cmp -s data/stopper.json '%s'", ends[e], file, file), 0);
        snprintf(pol, sizeof pol, "@%s", file);
        const char *args[] = {"proxy", "--quiet", "--upstream", serve.url, "--policy", pol, "--answer-type", "number", NULL};
        srv_proc px;
        assert_int_equal(srv_start(&px, args, tmp), 0);
        char u[256];
        snprintf(u, sizeof u, "%s/v1/chat/completions", px.url);
        http_resp r;
        assert_int_equal(http_call(u, "{\"messages\":[{\"role\":\"user\",\"content\":\"Compute ((7+6)*3)-5.\"}],"
                                      "\"n\":8,\"seed\":1}", NULL, 60, &r), CURLE_OK);
        assert_int_equal(r.status, 200);
        free(r.body);
        char *m = get_metrics(px.url);
        drawn[e] = metric(m, "earlystop_proxy_samples_drawn_total");
        free(m);
        assert_int_equal(srv_stop(&px), 0);
    }
    assert_true(drawn[0] == 2);
    assert_true(drawn[1] > 2);
}

/* The online controller inside the proxy: every request on the default
 * policy gets a ticket and is observed (the samples the proxy drew agree
 * with the controller's own replay of its candidate: no error), a tokens
 * target moves the threshold toward fewer samples, audits of an em-loss
 * target draw every sample, a request's max_em_drop below the budget runs
 * at the most conservative candidate, and the state saved on exit is the
 * one the next proxy starts from. */
static void test_controller(void **state)
{
    (void)state;
    if (!serve.pid) skip();
    char st[512];
    snprintf(st, sizeof st, "%s/controller.json", tmp);
    unlink(st);
    const char *args[] = {"proxy", "--quiet", "--upstream", serve.url, "--probe-every", "16", "--policy",
                          "dynasor:k=3+ac-beta", "--answer-type", "number", "--controller", "tokens=250",
                          "--controller-window", "10", "--controller-state", st, NULL};
    srv_proc px;
    assert_int_equal(srv_start(&px, args, tmp), 0);
    char *m = get_metrics(px.url);
    double v0 = metric(m, "earlystop_proxy_controller_value{param=\"ac-beta.threshold\"}");
    free(m);
    assert_true(v0 > 0 && v0 < 1);
    enum { N = 24, K = 6 };
    long drawn_first = 0, drawn_last = 0;
    for (int i = 0; i < N; i++) {
        json_t *body = json_pack("{s:s,s:i,s:i,s:i}", "prompt", "Compute ((7+6)*3)-5.\n", "n", K, "max_tokens", 200,
                                 "seed", 100 + i);
        long code;
        json_t *r = post_json(px.url, "/v1/completions", body, &code);
        assert_int_equal(code, 200);
        long samples = (long)json_integer_value(json_object_get(json_object_get(r, "earlystop"), "samples"));
        if (i < 4) drawn_first += samples;
        if (i >= N - 4) drawn_last += samples;
        json_decref(body);
        json_decref(r);
    }
    m = get_metrics(px.url);
    assert_int_equal((long)metric(m, "earlystop_proxy_controller_requests_total"), N);
    assert_int_equal((long)metric(m, "earlystop_proxy_controller_errors_total"), 0);
    double v1 = metric(m, "earlystop_proxy_controller_value{param=\"ac-beta.threshold\"}");
    free(m);
    print_message("controller tokens=250: ac-beta.threshold %.4f -> %.4f; samples drawn in the first 4 requests %ld, "
                  "the last 4 %ld (n=%d)\n", v0, v1, drawn_first, drawn_last, K);
    assert_true(v1 < v0);
    assert_true(drawn_last <= drawn_first);
    assert_int_equal(srv_stop(&px), 0);
    /* the next proxy starts where this one stopped */
    FILE *f = fopen(st, "r");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(srv_start(&px, args, tmp), 0);
    m = get_metrics(px.url);
    assert_int_equal((long)metric(m, "earlystop_proxy_controller_requests_total"), N);
    assert_true(fabs(metric(m, "earlystop_proxy_controller_value{param=\"ac-beta.threshold\"}") - v1) < 1e-6);
    free(m);
    assert_int_equal(srv_stop(&px), 0);

    /* em-loss: audits draw every sample; max_em_drop below the budget runs conservatively */
    const char *em[] = {"proxy", "--quiet", "--upstream", serve.url, "--probe-every", "16", "--policy",
                        "dynasor:k=3+ac-beta", "--answer-type", "number", "--controller", "em-loss=2", NULL};
    assert_int_equal(srv_start(&px, em, tmp), 0);
    int audits = 0;
    for (int i = 0; i < 16; i++) {
        json_t *body = json_pack("{s:s,s:i,s:i,s:i}", "prompt", "Compute ((7+6)*3)-5.\n", "n", K, "max_tokens", 200,
                                 "seed", 300 + i);
        if (i == 15) json_object_set_new(body, "earlystop", json_pack("{s:f}", "max_em_drop", 0.005));
        long code;
        json_t *r = post_json(px.url, "/v1/completions", body, &code);
        assert_int_equal(code, 200);
        json_t *es = json_object_get(r, "earlystop");
        if (json_is_true(json_object_get(es, "audited"))) {
            audits++;
            assert_int_equal(json_integer_value(json_object_get(es, "samples")), K);
        }
        if (i == 15) assert_false(json_is_true(json_object_get(es, "audited")));
        json_decref(body);
        json_decref(r);
    }
    m = get_metrics(px.url);
    assert_int_equal((long)metric(m, "earlystop_proxy_audits_total"), audits);
    assert_int_equal((long)metric(m, "earlystop_proxy_controller_requests_total"), 15); /* not the narrow one */
    assert_int_equal((long)metric(m, "earlystop_proxy_controller_errors_total"), 0);
    free(m);
    print_message("controller em-loss=2: %d audits in 15 requests, each drew all %d samples\n", audits, K);
    assert_true(audits > 0);
    assert_int_equal(srv_stop(&px), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_equals_replay),
        cmocka_unit_test(test_record_equals_generate),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_record_upstream_down),
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_bad_upstreams),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_clients_leave),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_controller),
        cmocka_unit_test(test_stopper_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
