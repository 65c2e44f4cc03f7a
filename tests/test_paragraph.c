/*
 * test_paragraph.c - paragraph-end probes: the splitter (es_para_split) and
 * the last-number reading (es_text_last_number) on their own and on the
 * real *_think traces, and `earlystop record --probe-at paragraphs` end to
 * end: from a mock engine that streams the *_think files' texts (their
 * recorded probes are what it must find again) and from `earlystop serve`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "earlystop.h"
#include "earlystop_io.h"
#include "refdata.h"
#include "srvrun.h"

static char tmp[256];
static srv_proc px; /* a proxy a failed test left running is stopped by the teardown */

/* ------------------------------------------------------------ the readings */

static void expect_last(const char *t, int found, const char *want)
{
    char out[64];
    assert_int_equal(es_text_last_number(t, strlen(t), out, sizeof out), found);
    assert_string_equal(out, want);
}

static void test_last_number(void **state)
{
    (void)state;
    expect_last("no digits here", 0, "");
    expect_last("", 0, "");
    expect_last("she makes $1,150 each week.", 1, "1150");
    expect_last("So 20% is 0.20. Then", 1, "0.20");
    expect_last("16-4 = 12, and 16-4", 1, "-4");
    expect_last("a 12,34 b", 1, "34");        /* ",34" is no thousands group */
    expect_last("1,2345", 1, "5");            /* ",234" is, the 5 stands alone */
    expect_last("ends 3.", 1, "3");           /* a '.' without digits is not a decimal point */
    expect_last("1.2.3", 1, "3");
    char small[4];
    assert_int_equal(es_text_last_number("123456", 6, small, sizeof small), 1);
    assert_string_equal(small, "123");
    assert_int_equal(es_text_last_number(NULL, 0, small, sizeof small), 0);
}

typedef struct para { size_t a, b; uint32_t flags; } para;

/* The paragraphs of t fed as prefixes growing `step` bytes at a time (0:
 * all at once), the last call final. */
static size_t split_all(const char *t, size_t step, para *out, size_t cap)
{
    es_para_split ps;
    es_para_split_init(&ps);
    size_t n = strlen(t), k = 0, a, b;
    uint32_t f;
    for (size_t m = step ? 0 : n;; m = m + step < n ? m + step : n) {
        int final = m == n;
        while (es_para_split_next(&ps, t, m, final, &a, &b, &f)) {
            if (k < cap) out[k] = (para){a, b, f};
            k++;
        }
        if (final) break;
    }
    return k;
}

static void test_split(void **state)
{
    (void)state;
    static const struct { const char *t; size_t n; const char *first, *last; uint32_t last_flags; } cases[] = {
        {"One 1.\n\nTwo.\n \t\nThree</think>after\n\nmore", 3, "One 1.", "Three", ES_CUE_END},
        {"A\n\n\n\n</think>x", 1, "A", "A", ES_CUE_END},          /* blank lines, then the close */
        {"A\n\nB", 2, "A", "B", 0},                               /* no close: the text to its end */
        {"A\n\n  \n\nB\n\n", 2, "A", "B", 0},                     /* white-space paragraphs skipped */
        {"x < y\nstill one\r\n\r\nnext", 2, "x < y\nstill one\r", "next", 0},
        {"</think>A\n\nB", 0, "", "", 0},                         /* nothing before the close */
        {"", 0, "", "", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        para whole[8], inc[8];
        size_t n = split_all(cases[c].t, 0, whole, 8);
        assert_int_equal(n, cases[c].n);
        for (size_t step = 1; step < 4; step++) {
            assert_int_equal(split_all(cases[c].t, step, inc, 8), n);
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(inc[i].a, whole[i].a);
                assert_int_equal(inc[i].b, whole[i].b);
                assert_int_equal(inc[i].flags, whole[i].flags);
            }
        }
        if (!n) continue;
        assert_int_equal(whole[0].b - whole[0].a, strlen(cases[c].first));
        assert_memory_equal(cases[c].t + whole[0].a, cases[c].first, strlen(cases[c].first));
        assert_memory_equal(cases[c].t + whole[n - 1].a, cases[c].last, strlen(cases[c].last));
        assert_int_equal(whole[n - 1].flags, cases[c].last_flags);
        for (size_t i = 0; i + 1 < n; i++) assert_int_equal(whole[i].flags, 0);
    }
    /* a close arriving in pieces is waited for, not read as text */
    es_para_split ps;
    es_para_split_init(&ps);
    const char *t = "A 1\n\n</think>";
    size_t a, b;
    uint32_t f;
    assert_int_equal(es_para_split_next(&ps, t, 7, 0, &a, &b, &f), 0); /* "A 1\n\n</" */
    assert_int_equal(es_para_split_next(&ps, t, strlen(t), 0, &a, &b, &f), 1);
    assert_int_equal(f, ES_CUE_END);
    assert_int_equal(b, 3);
    assert_int_equal(es_para_split_next(&ps, t, strlen(t), 1, &a, &b, &f), 0);
}

/* ------------------------------------------------- on the real *_think files */

static const char *const think_files[] = {"qwq32b_gsm8k_think.jsonl", "r1qwen32b_gsm8k_think.jsonl"};

static json_t *load_items(const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/traces/%s", es_ref_data_dir(), name);
    FILE *fp = fopen(path, "r");
    if (!fp) return NULL;
    json_t *items = json_array();
    char *line = NULL;
    size_t cap = 0;
    int first = 1;
    while (getline(&line, &cap, fp) > 0) {
        json_t *v = json_loads(line, 0, NULL);
        if (!first && v) json_array_append(items, v);
        json_decref(v);
        first = 0;
    }
    free(line);
    fclose(fp);
    return items;
}

/* The probes a live driver makes on text t: at each paragraph end after the
 * first number, the last number so far and the cues.  Returns the count. */
static size_t live_probes(const char *t, size_t step, char (*ans)[64], uint32_t *cues, size_t cap)
{
    para ps[4096];
    size_t n = split_all(t, step, ps, 4096), k = 0;
    assert_true(n <= 4096);
    char last[64] = "";
    for (size_t i = 0; i < n; i++) {
        char got[64];
        if (es_text_last_number(t + ps[i].a, ps[i].b - ps[i].a, got, sizeof got)) memcpy(last, got, sizeof got);
        if (!last[0]) continue;
        if (k < cap) {
            memcpy(ans[k], last, sizeof last);
            cues[k] = es_text_cues(t + ps[i].a, ps[i].b - ps[i].a) | ps[i].flags;
        }
        k++;
    }
    return k;
}

/* The *_think files' probes were made by the same rule (paragraph ends of
 * the thinking, the last number so far): measured here, and the paragraphs
 * found as the text streams in equal those of the whole text. */
static void test_think_files(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof think_files / sizeof think_files[0]; f++) {
        json_t *items = load_items(think_files[f]);
        if (!items) {
            print_message("%s absent: set ES_SHARED_DATA; skipping\n", think_files[f]);
            skip();
        }
        size_t samples = 0, same_count = 0, probes = 0, agree = 0, cue_ok = 0, item_i;
        static char ans[4096][64], ans2[4096][64];
        static uint32_t cues[4096], cues2[4096], file_cues[4096];
        json_t *it;
        json_array_foreach(items, item_i, it) {
            json_t *s = json_array_get(json_object_get(it, "samples"), 0);
            const char *t = json_string_value(json_object_get(s, "text"));
            json_t *pr = json_object_get(s, "probes");
            size_t np = json_array_size(pr);
            if (!t || !np) continue;
            samples++;
            size_t n = live_probes(t, 0, ans, cues, 4096);
            /* streamed in pieces of 1..97 bytes: the same probes */
            size_t n2 = live_probes(t, 1 + item_i % 97, ans2, cues2, 4096);
            assert_int_equal(n2, n);
            for (size_t k = 0; k < n; k++) {
                assert_string_equal(ans2[k], ans[k]);
                assert_int_equal(cues2[k], cues[k]);
            }
            if (n != np) continue;
            same_count++;
            /* what `earlystop cues` marks on the file is what the live driver read */
            assert_int_equal(es_paragraph_cues(t, np, file_cues), ES_OK);
            cue_ok += !memcmp(file_cues, cues, np * sizeof *cues);
            for (size_t k = 0; k < np; k++) {
                probes++;
                agree += !strcmp(ans[k], json_string_value(json_object_get(json_array_get(pr, k), "answer")));
            }
        }
        print_message("%s: %zu of %zu samples with probes have as many paragraph probes as the file; of their %zu "
                      "probes %zu (%.4f) have the file's answer; cues as `earlystop cues` in %zu samples\n",
                      think_files[f], same_count, samples, probes, agree, probes ? (double)agree / probes : 0.0,
                      cue_ok);
        assert_true(samples > 300);
        assert_int_equal(cue_ok, same_count);
        /* the files' own rule: all but a sample or two */
        assert_true(same_count * 100 >= samples * 99);
        assert_true(agree * 100 >= probes * 99);
        json_decref(items);
    }
}

/* ------------------------------------------- an engine that streams the texts */

/* One connection at a time: the request names "think N"; the answer streams
 * texts[N] as chat chunks of a few bytes, one token each (usage in every
 * chunk), the thinking as reasoning_content when `reasoning` is set. */
typedef struct text_engine {
    int fd, port, reasoning;
    _Atomic int stop, answers;
    pthread_t th;
    const char **texts;
    size_t n;
} text_engine;

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

static void send_chunk(int fd, const char *piece, size_t n, int reasoning, const char *finish, int tokens)
{
    json_t *delta = json_object();
    if (n) json_object_set_new(delta, reasoning ? "reasoning_content" : "content", json_stringn(piece, n));
    json_t *v = json_pack("{s:[{s:i,s:o,s:s?}],s:{s:i,s:i}}", "choices", "index", 0, "delta", delta, "finish_reason",
                          finish, "usage", "prompt_tokens", 5, "completion_tokens", tokens);
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    assert_non_null(s);
    send_str(fd, "data: ");
    send_str(fd, s);
    send_str(fd, "\n\n");
    free(s);
}

static void stream_text(text_engine *e, int c, const char *t)
{
    send_str(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
    const char *close = e->reasoning ? strstr(t, "</think>") : NULL;
    size_t n = strlen(t), think_end = close ? (size_t)(close - t) : 0, i = 0;
    int tok = 0;
    if (close) { /* the engine's reasoning parser: the tag and the white space around it are not sent */
        while (think_end > 0 && (t[think_end - 1] == '\n' || t[think_end - 1] == ' ')) think_end--;
    }
    while (i < n) {
        size_t step = 1 + (size_t)(tok * 7 % 11), j = i + step;
        if (close && i < think_end && j > think_end) j = think_end;
        if (j > n) j = n;
        while (j < n && ((unsigned char)t[j] & 0xC0) == 0x80) j++; /* whole UTF-8 characters */
        int in_think = close && i < think_end;
        if (close && i == think_end) { /* skip "\n</think>\n\n" */
            i = (size_t)(close - t) + 8;
            while (i < n && (t[i] == '\n' || t[i] == ' ')) i++;
            continue;
        }
        send_chunk(c, t + i, j - i, in_think, NULL, ++tok);
        i = j;
    }
    send_chunk(c, "", 0, 0, "stop", tok);
    send_str(c, "data: [DONE]\n\n");
}

static void *engine_main(void *arg)
{
    text_engine *e = arg;
    while (!atomic_load(&e->stop)) {
        struct pollfd p = {e->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(e->fd, NULL, NULL);
        if (c < 0) continue;
        char buf[65536];
        size_t got = 0;
        const char *body = NULL;
        long len = -1;
        while (got < sizeof buf - 1) {
            ssize_t r = recv(c, buf + got, sizeof buf - 1 - got, 0);
            if (r <= 0) break;
            got += (size_t)r;
            buf[got] = '\0';
            const char *h = strstr(buf, "\r\n\r\n");
            const char *cl = strstr(buf, "Content-Length:");
            if (!cl) cl = strstr(buf, "content-length:");
            if (h && cl) len = atol(cl + 15);
            if (h && len >= 0 && (size_t)(h + 4 - buf) + (size_t)len <= got) {
                body = h + 4;
                break;
            }
        }
        const char *q = body ? strstr(body, "think ") : NULL;
        size_t k = q ? (size_t)atol(q + 6) : e->n;
        if (k < e->n && strstr(body, "\"stream\":false")) {
            atomic_fetch_add(&e->answers, 1);
            static const char ans[] = "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"0.\"},"
                                      "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}";
            char head[160];
            snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", sizeof ans - 1);
            send_str(c, head);
            send_str(c, ans);
        } else if (k < e->n) stream_text(e, c, e->texts[k]);
        else send_str(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        close(c);
    }
    return NULL;
}

static int engine_start(text_engine *e)
{
    e->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (e->fd < 0 || bind(e->fd, (struct sockaddr *)&a, sizeof a) || listen(e->fd, 64) ||
        getsockname(e->fd, (struct sockaddr *)&a, &al))
        return -1;
    e->port = ntohs(a.sin_port);
    atomic_store(&e->stop, 0);
    return pthread_create(&e->th, NULL, engine_main, e);
}

static void engine_stop(text_engine *e)
{
    atomic_store(&e->stop, 1);
    pthread_join(e->th, NULL);
    close(e->fd);
}

enum { E2E_SAMPLES = 40 };

/* `record --probe-at paragraphs` on the think texts streamed: the file's
 * probe answers found again, cues that `earlystop cues` leaves as they are
 * (the file unchanged byte for byte), no cost, `at` in token order. */
static void record_think(const char *family, int reasoning)
{
    json_t *items = load_items(think_files[0]);
    if (!items) skip();
    if (access(srv_bin(), X_OK)) skip();
    const char *texts[E2E_SAMPLES];
    char q[512], rec[512], rec2[512];
    snprintf(q, sizeof q, "%s/think_q_%s.jsonl", tmp, family);
    snprintf(rec, sizeof rec, "%s/think_rec_%s.jsonl", tmp, family);
    snprintf(rec2, sizeof rec2, "%s/think_rec2_%s.jsonl", tmp, family);
    FILE *out = fopen(q, "w");
    assert_non_null(out);
    for (size_t i = 0; i < E2E_SAMPLES; i++) {
        json_t *s = json_array_get(json_object_get(json_array_get(items, i), "samples"), 0);
        texts[i] = json_string_value(json_object_get(s, "text"));
        fprintf(out, "{\"id\": \"t%zu\", \"question\": \"think %zu\", \"gold\": \"0\", \"answer_type\": \"number\"}\n",
                i, i);
    }
    fclose(out);
    text_engine e = {.texts = texts, .n = E2E_SAMPLES, .reasoning = reasoning};
    assert_int_equal(engine_start(&e), 0);
    int rc = srv_sh("'%s' record --upstream http://127.0.0.1:%d --questions '%s' --probe-at paragraphs --family %s "
                "--concurrency 4 --out '%s' >/dev/null 2>'%s.err'", srv_bin(), e.port, q, family, rec, rec);
    engine_stop(&e);
    if (rc) srv_sh("cat '%s.err' >&2", rec);
    assert_int_equal(rc, 0);
    /* marking the cues again changes nothing, header included */
    assert_int_equal(srv_sh("'%s' cues '%s' --out '%s' 2>/dev/null && cmp -s '%s' '%s'", srv_bin(), rec, rec2, rec, rec2), 0);
    FILE *in = fopen(rec, "r");
    char *line = NULL;
    size_t cap = 0;
    assert_true(getline(&line, &cap, in) > 0);
    json_t *h = json_loads(line, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(h, "probe_at")), "paragraphs");
    json_decref(h);
    size_t agree = 0, probes = 0, same_count = 0;
    for (size_t i = 0; i < E2E_SAMPLES; i++) {
        assert_true(getline(&line, &cap, in) > 0);
        json_t *r = json_loads(line, 0, NULL);
        json_t *s = json_array_get(json_object_get(r, "samples"), 0);
        json_t *want = json_object_get(json_array_get(json_object_get(json_array_get(items, i), "samples"), 0), "probes");
        json_t *got = json_object_get(s, "probes");
        json_int_t tokens = json_integer_value(json_object_get(s, "tokens")), prev = 0;
        if (!reasoning) assert_string_equal(json_string_value(json_object_get(s, "text")), texts[i]);
        for (size_t k = 0; k < json_array_size(got); k++) {
            json_t *p = json_array_get(got, k);
            json_int_t at = json_integer_value(json_object_get(p, "at"));
            assert_true(at >= prev && at <= tokens && at > 0);
            prev = at;
            assert_null(json_object_get(p, "cost"));
            assert_null(json_object_get(p, "confidence"));
            assert_true(json_is_array(json_object_get(p, "cues")));
        }
        /* the thinking closes after the last paragraph probe */
        json_t *lastc = json_object_get(json_array_get(got, json_array_size(got) - 1), "cues");
        int end = 0;
        for (size_t c = 0; c < json_array_size(lastc); c++) end |= !strcmp(json_string_value(json_array_get(lastc, c)), "end");
        assert_true(end);
        if (json_array_size(got) == json_array_size(want)) {
            same_count++;
            for (size_t k = 0; k < json_array_size(want); k++, probes++)
                agree += json_equal(json_object_get(json_array_get(got, k), "answer"),
                                    json_object_get(json_array_get(want, k), "answer"));
        }
        json_decref(r);
    }
    free(line);
    fclose(in);
    print_message("record --family %s (%s): %zu of %d samples with the file's probe count; %zu of %zu probes with "
                  "the file's answer\n", family, reasoning ? "reasoning_content" : "content", same_count, E2E_SAMPLES,
                  agree, probes);
    assert_int_equal(same_count, E2E_SAMPLES);
    assert_int_equal(agree, probes);
    json_decref(items);
}

static void test_record_think_content(void **state)
{
    (void)state;
    record_think("generic", 0);
}

static void test_record_think_reasoning(void **state)
{
    (void)state;
    record_think("qwen3", 1);
}

/* Two voted answers, as numbers (the spelling kept may differ: "243", "243.00"). */
static int same_number(json_t *a, json_t *b)
{
    if (json_is_null(a) || json_is_null(b)) return json_is_null(a) && json_is_null(b);
    return json_is_string(a) && json_is_string(b) &&
           es_answer_equal(ES_ANSWER_NUMBER, json_string_value(a), json_string_value(b)) == 1;
}

/* A chat request through the proxy, streamed: the text put back together
 * and the earlystop summary. */
static json_t *stream_chat(const char *url, const char *body, char **text)
{
    char u[256];
    snprintf(u, sizeof u, "%s/v1/chat/completions", url);
    http_resp r;
    assert_int_equal(http_call(u, body, NULL, 120, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    json_t *summary = NULL;
    size_t n = 0;
    if (!strstr(r.body, "\"earlystop\"")) print_message("no summary in the stream: ...%s\n", r.body + (r.n > 600 ? r.n - 600 : 0));
    *text = calloc(1, r.n + 1); /* the text is never longer than the stream */
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "data: ", 6) || !strcmp(line + 6, "[DONE]")) continue;
        json_t *c = json_loads(line + 6, 0, NULL);
        assert_non_null(c);
        json_t *es = json_object_get(c, "earlystop");
        if (es) summary = json_incref(es);
        json_t *t = json_object_get(json_object_get(json_array_get(json_object_get(c, "choices"), 0), "delta"), "content");
        if (json_is_string(t)) memcpy(*text + n, json_string_value(t), json_string_length(t)), n += json_string_length(t);
        json_decref(c);
    }
    free(r.body);
    return summary;
}

/* The proxy with paragraph probes in front of the engine streaming the
 * think texts decides as `earlystop eval` replays the trace that `record
 * --probe-at paragraphs` wrote of the same texts: the same stop points and
 * answers, no probe requests; the client's streamed text is the whole
 * response's. */
static void test_proxy_paragraphs(void **state)
{
    (void)state;
    json_t *items = load_items(think_files[0]);
    if (!items || access(srv_bin(), X_OK)) skip();
    static const char *const policies[] = {"dynasor:k=3", "dynasor:k=5"};
    const char *texts[E2E_SAMPLES];
    char q[512], rec[512], dec[512];
    snprintf(q, sizeof q, "%s/px_q.jsonl", tmp);
    snprintf(rec, sizeof rec, "%s/px_rec.jsonl", tmp);
    FILE *out = fopen(q, "w");
    assert_non_null(out);
    for (size_t i = 0; i < E2E_SAMPLES; i++) {
        texts[i] = json_string_value(json_object_get(json_array_get(json_object_get(json_array_get(items, i), "samples"), 0), "text"));
        fprintf(out, "{\"id\": \"t%zu\", \"question\": \"think %zu\", \"gold\": \"0\", \"answer_type\": \"number\"}\n", i, i);
    }
    fclose(out);
    text_engine e = {.texts = texts, .n = E2E_SAMPLES};
    assert_int_equal(engine_start(&e), 0);
    char up[64];
    snprintf(up, sizeof up, "http://127.0.0.1:%d", e.port);
    assert_int_equal(srv_sh("'%s' record --upstream %s --questions '%s' --probe-at paragraphs --out '%s' >/dev/null 2>&1",
                        srv_bin(), up, q, rec), 0);
    const char *args[] = {"proxy", "--quiet", "--upstream", up, "--probe-at", "paragraphs", "--answer-type", "number",
                          "--policy", "full", NULL};
    assert_int_equal(srv_start(&px, args, tmp), 0);
    for (size_t p = 0; p < sizeof policies / sizeof policies[0]; p++) {
        snprintf(dec, sizeof dec, "%s/px_dec%zu.jsonl", tmp, p);
        assert_int_equal(srv_sh("'%s' eval '%s' --policy '%s' --decisions '%s' --no-oracle >/dev/null 2>&1", srv_bin(), rec,
                            policies[p], dec), 0);
        FILE *fp = fopen(dec, "r");
        assert_non_null(fp);
        json_t *want[E2E_SAMPLES] = {0};
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, fp) > 0) {
            json_t *d = json_loads(line, 0, NULL);
            const char *id = json_string_value(json_object_get(d, "id"));
            if (!strncmp(json_string_value(json_object_get(d, "policy")), "dynasor", 7) && id && id[0] == 't')
                want[atoi(id + 1)] = json_incref(d);
            json_decref(d);
        }
        free(line);
        fclose(fp);
        long stopped = 0, tokens = 0, full = 0;
        int answers0 = atomic_load(&e.answers);
        for (size_t i = 0; i < E2E_SAMPLES; i++) {
            assert_non_null(want[i]);
            char body[256];
            snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"think %zu\"}],"
                     "\"earlystop\":{\"policy\":\"%s\"}}", i, policies[p]);
            char u[256];
            snprintf(u, sizeof u, "%s/v1/chat/completions", px.url);
            http_resp r;
            assert_int_equal(http_call(u, body, NULL, 120, &r), CURLE_OK);
            assert_int_equal(r.status, 200);
            json_t *v = json_loads(r.body, 0, NULL);
            free(r.body);
            json_t *es = json_object_get(v, "earlystop");
            if (json_integer_value(json_object_get(es, "tokens_at_stop")) != json_integer_value(json_object_get(want[i], "tokens")) ||
                !same_number(json_object_get(es, "answer"), json_object_get(want[i], "answer")) ||
                json_integer_value(json_object_get(es, "probe_tokens")) != 0) {
                char *a = json_dumps(es, JSON_COMPACT), *b = json_dumps(want[i], JSON_COMPACT);
                print_message("%s item %zu:\n  proxy %s\n  eval  %s\n", policies[p], i, a, b);
                free(a);
                free(b);
                fail();
            }
            stopped += json_integer_value(json_object_get(es, "samples_stopped"));
            tokens += json_integer_value(json_object_get(es, "tokens_at_stop"));
            full += json_integer_value(json_object_get(json_object_get(v, "usage"), "completion_tokens"));
            if (i < 4) { /* streamed: the same text and the same stop */
                char sbody[320], *text = NULL;
                snprintf(sbody, sizeof sbody, "{\"messages\":[{\"role\":\"user\",\"content\":\"think %zu\"}],"
                         "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"earlystop\":{\"policy\":\"%s\"}}", i, policies[p]);
                json_t *sum = stream_chat(px.url, sbody, &text);
                assert_non_null(sum);
                assert_true(json_equal(json_object_get(sum, "tokens_at_stop"), json_object_get(es, "tokens_at_stop")));
                const char *whole = json_string_value(json_object_get(
                    json_object_get(json_array_get(json_object_get(v, "choices"), 0), "message"), "content"));
                assert_non_null(whole);
                assert_string_equal(text, whole);
                free(text);
                json_decref(sum);
            }
            json_decref(v);
            json_decref(want[i]);
        }
        print_message("proxy --probe-at paragraphs %s = replay on %d think texts: %ld samples stopped, %ld tokens to "
                      "the stops (upstream generated %ld), %d final-answer requests\n", policies[p], E2E_SAMPLES,
                      stopped, tokens, full, atomic_load(&e.answers) - answers0);
        assert_true(stopped > 0);
    }
    /* a rule that needs probe confidences fails the request saying so, as
     * `eval` refuses it on the recorded file: it does not run on as if the
     * rule had said continue */
    assert_int_not_equal(srv_sh("'%s' eval '%s' --policy deer >/dev/null 2>&1", srv_bin(), rec), 0);
    char body[256], u[256];
    snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"think 0\"}],"
             "\"earlystop\":{\"policy\":\"deer\"}}");
    snprintf(u, sizeof u, "%s/v1/chat/completions", px.url);
    http_resp r;
    assert_int_equal(http_call(u, body, NULL, 120, &r), CURLE_OK);
    print_message("deer behind paragraph probes: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "confidence"));
    free(r.body);
    assert_int_equal(srv_stop(&px), 0);
    engine_stop(&e);
    json_decref(items);
}

/* ------------------------------------------------- from `earlystop serve` */

/* The built-in model writes one paragraph (no blank lines): each sample
 * that wrote an answer gets one probe at its end, whose answer is the
 * sample's own (the family's reading on the same text), with cues. */
static void test_record_serve(void **state)
{
    (void)state;
    if (access("data/model.bin", R_OK) || access(srv_bin(), X_OK)) skip();
    srv_proc serve;
    const char *args[] = {"serve", "--quiet", "--max-seqs", "16", NULL};
    assert_int_equal(srv_start(&serve, args, tmp), 0);
    char gen[512], q[512], rec[512], rec2[512];
    snprintf(gen, sizeof gen, "%s/gen.jsonl", tmp);
    snprintf(q, sizeof q, "%s/q.jsonl", tmp);
    snprintf(rec, sizeof rec, "%s/rec.jsonl", tmp);
    snprintf(rec2, sizeof rec2, "%s/rec2.jsonl", tmp);
    assert_int_equal(srv_sh("'%s' generate --task date --items 6 --samples 1 --seed 3 --out '%s' >/dev/null 2>&1", srv_bin(),
                        gen), 0);
    /* generate's questions as record's: one per line, its id, question, gold, type */
    FILE *in = fopen(gen, "r"), *out = fopen(q, "w");
    assert_non_null(in);
    assert_non_null(out);
    char *line = NULL;
    size_t cap = 0;
    for (int n = 0; getline(&line, &cap, in) > 0; n++) {
        if (!n) continue;
        json_t *g = json_loads(line, 0, NULL), *v = json_pack("{s:O,s:O,s:O,s:O,s:i}", "id", json_object_get(g, "id"),
                                                              "question", json_object_get(g, "question"), "gold",
                                                              json_object_get(g, "gold"), "answer_type",
                                                              json_object_get(g, "answer_type"), "max_tokens", 160);
        char *t = json_dumps(v, JSON_COMPACT);
        fprintf(out, "%s\n", t);
        free(t);
        json_decref(v);
        json_decref(g);
    }
    fclose(in);
    fclose(out);
    int rc = srv_sh("'%s' record --upstream %s --questions '%s' --samples 3 --seed 5 --probe-at paragraphs --out '%s' --json "
                ">'%s.sum' 2>/dev/null", srv_bin(), serve.url, q, rec, rec);
    assert_int_equal(srv_stop(&serve), 0);
    assert_int_equal(rc, 0);
    char sum_path[600];
    snprintf(sum_path, sizeof sum_path, "%s.sum", rec);
    in = fopen(sum_path, "r");
    assert_non_null(in);
    assert_true(getline(&line, &cap, in) > 0);
    fclose(in);
    char *sum = line;
    json_t *sj = json_loads(sum, 0, NULL);
    free(line);
    assert_int_equal(json_integer_value(json_object_get(sj, "probe_tokens")), 0);
    json_decref(sj);
    assert_int_equal(srv_sh("'%s' cues '%s' --out '%s' 2>/dev/null && cmp -s '%s' '%s'", srv_bin(), rec, rec2, rec, rec2), 0);
    es_trace_reader *r = NULL;
    es_error err;
    assert_int_equal(es_trace_reader_open(rec, 0, &r, &err), ES_OK);
    es_item it;
    size_t with = 0, samples = 0;
    while (es_trace_reader_next(r, &it, &err) == ES_OK) {
        for (size_t i = 0; i < it.n_samples; i++) {
            const es_sample *s = &it.samples[i];
            samples++;
            assert_true(s->n_probes <= 1);
            if (!s->answer) continue;
            assert_int_equal(s->n_probes, 1);
            with++;
            assert_string_equal(s->probes[0].answer, s->answer);
            assert_int_equal(s->probes[0].cost, -1);
            assert_true(s->probes[0].cues & ES_CUE_READ);
            assert_true(s->probes[0].at <= s->tokens);
        }
    }
    es_trace_reader_free(r);
    assert_int_equal(samples, 18);
    assert_true(with > 0);
}

/* Bad --probe-at values and a clash with --probe-every are usage errors,
 * for record and proxy alike. */
static void test_usage(void **state)
{
    (void)state;
    if (access(srv_bin(), X_OK)) skip();
    assert_int_equal(srv_sh("'%s' record --upstream http://127.0.0.1:1 --questions /dev/null --probe-at lines 2>'%s/u1'",
                        srv_bin(), tmp), 2);
    assert_int_equal(srv_sh("grep -q \"'lines' is not one of tokens, paragraphs\" '%s/u1'", tmp), 0);
    assert_int_equal(srv_sh("'%s' record --upstream http://127.0.0.1:1 --questions /dev/null --probe-at paragraphs "
                        "--probe-every 8 2>'%s/u2'", srv_bin(), tmp), 2);
    assert_int_equal(srv_sh("grep -q 'probe-every' '%s/u2'", tmp), 0);
    assert_int_equal(srv_sh("'%s' record --help | grep -q -- '--probe-at'", srv_bin()), 0);
    assert_int_equal(srv_sh("'%s' proxy --upstream http://127.0.0.1:1 --probe-at paragraphs --probe-every 8 2>'%s/u3'",
                        srv_bin(), tmp), 2);
    assert_int_equal(srv_sh("grep -q 'probe-every' '%s/u3'", tmp), 0);
    assert_int_equal(srv_sh("'%s' proxy --upstream http://127.0.0.1:1 --probe-at words 2>/dev/null", srv_bin()), 2);
    assert_int_equal(srv_sh("'%s' proxy --help | grep -q -- '--probe-at'", srv_bin()), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/es_test_paragraph_XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    srv_stop(&px);
    if (getenv("ES_KEEP_TMP")) return 0;
    return srv_sh("rm -rf '%s'", tmp) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_number),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_think_files),
        cmocka_unit_test(test_record_think_content),
        cmocka_unit_test(test_record_think_reasoning),
        cmocka_unit_test(test_proxy_paragraphs),
        cmocka_unit_test(test_record_serve),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
