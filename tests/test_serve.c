/* test_serve.c - the serve layer's parsers and pieces, without a network:
 * the SSE reader (every split of a stream gives the same events), OpenAI
 * request bodies (what is accepted, what is refused and how), the model
 * families' answer rules (generic = the built-in model's own rule), the
 * Prometheus text, the key check. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "earlystop_lm.h"
#include "earlystop_serve.h"
#include "serve/sv.h"

/* ------------------------------------------------------------------ SSE */

typedef struct events {
    char log[4096];
    int n;
} events;

static int collect(void *ctx, const char *event, const char *data, size_t len)
{
    events *e = ctx;
    size_t at = strlen(e->log);
    snprintf(e->log + at, sizeof e->log - at, "[%s|%.*s]", event, (int)len, data);
    e->n++;
    return 0;
}

static const char stream[] =
    "\xEF\xBB\xBF: a comment\r\n"
    "data: {\"a\":1}\r\n\r\n"
    "event: usage\ndata:two\ndata:  lines\n\n"
    "id: 7\nretry: 10\ndata\n\n"
    "data: cr only\r\rdata: [DONE]\n\n"
    "data: crlf\r\ndata: within\n\n" /* a CR ending one piece, its LF the next (after an empty one) */
    "data: unterminated";

static const char want[] = "[|{\"a\":1}][usage|two\n lines][|][|cr only][|[DONE]][|crlf\nwithin]";

static void test_sse_every_split(void **state)
{
    (void)state;
    size_t n = sizeof stream - 1;
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b += 7) {
            es_sse_reader *r;
            assert_int_equal(es_sse_reader_new(1024, &r), ES_OK);
            events e;
            memset(&e, 0, sizeof e);
            assert_int_equal(es_sse_reader_feed(r, stream, a, collect, &e), 0);
            assert_int_equal(es_sse_reader_feed(r, stream + a, b - a, collect, &e), 0);
            assert_int_equal(es_sse_reader_feed(r, stream + b, n - b, collect, &e), 0);
            assert_string_equal(e.log, want);
            assert_true(es_sse_reader_pending(r) > 0); /* the unterminated event */
            es_sse_reader_free(r);
        }
    }
    /* byte by byte */
    es_sse_reader *r;
    assert_int_equal(es_sse_reader_new(1024, &r), ES_OK);
    events e;
    memset(&e, 0, sizeof e);
    for (size_t i = 0; i < n; i++) assert_int_equal(es_sse_reader_feed(r, stream + i, 1, collect, &e), 0);
    assert_string_equal(e.log, want);
    es_sse_reader_free(r);
}

static int stop_at_second(void *ctx, const char *event, const char *data, size_t len)
{
    (void)event, (void)data, (void)len;
    return ++*(int *)ctx == 2 ? 42 : 0;
}

static void test_sse_limits(void **state)
{
    (void)state;
    es_sse_reader *r;
    assert_int_equal(es_sse_reader_new(4, &r), ES_EINVAL);
    assert_int_equal(es_sse_reader_new(64, &r), ES_OK);
    char big[200];
    memset(big, 'x', sizeof big);
    events e;
    memset(&e, 0, sizeof e);
    assert_int_equal(es_sse_reader_feed(r, "data: ", 6, collect, &e), 0);
    assert_int_equal(es_sse_reader_feed(r, big, sizeof big, collect, &e), ES_ERANGE);
    es_sse_reader_free(r);
    /* many short data lines add up too */
    assert_int_equal(es_sse_reader_new(64, &r), ES_OK);
    int rc = 0;
    for (int i = 0; i < 40 && !rc; i++) rc = es_sse_reader_feed(r, "data: abcd\n", 11, collect, &e);
    assert_int_equal(rc, ES_ERANGE);
    es_sse_reader_free(r);
    /* a callback's verdict stops the feed */
    assert_int_equal(es_sse_reader_new(64, &r), ES_OK);
    int count = 0;
    assert_int_equal(es_sse_reader_feed(r, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, stop_at_second, &count), 42);
    assert_int_equal(count, 2);
    es_sse_reader_free(r);
}

/* -------------------------------------------------------------- bodies */

typedef struct body_case {
    int kind;
    const char *body;
    int rc;
    const char *param;
} body_case;

static const body_case bodies[] = {
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", ES_OK, NULL},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]}],\"n\":3,"
                  "\"max_completion_tokens\":5,\"logprobs\":true,\"top_logprobs\":2,\"stop\":\"x\",\"seed\":-1,"
                  "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"tools\":[]}", ES_OK, NULL},
    {ES_OAI_COMPLETIONS, "{\"prompt\":[\"a\",\"b\"],\"logprobs\":0,\"max_tokens\":1.0}", ES_OK, NULL},
    {ES_OAI_COMPLETIONS, "{\"prompt\":\"a\",\"earlystop\":{\"policy\":\"ac-beta\",\"max_em_drop\":0.02}}", ES_OK, NULL},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}],"
                  "\"continue_final_message\":true}", ES_OK, NULL},
    {ES_OAI_CHAT, "", ES_EPARSE, ""},
    {ES_OAI_CHAT, "{\"messages\":", ES_EPARSE, ""},
    {ES_OAI_CHAT, "\"text\"", ES_EPARSE, ""},
    {ES_OAI_CHAT, "[1]", ES_EINVAL, ""},
    {ES_OAI_CHAT, "{\"messages\":[]}", ES_EINVAL, "messages"},
    {ES_OAI_CHAT, "{\"messages\":[3]}", ES_EINVAL, "messages[0]"},
    {ES_OAI_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", ES_EINVAL, "messages[0]"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", ES_EINVAL, "messages[0]"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", ES_EINVAL, "messages[0]"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":0}", ES_EINVAL, "n"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":1.5}", ES_EINVAL, "n"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":1e300}", ES_EINVAL, "n"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", ES_EINVAL, "top_logprobs"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", ES_EINVAL, "temperature"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", ES_EINVAL, "stop"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":[]}", ES_EINVAL, "stream_options"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"earlystop\":{\"policy\":3}}", ES_EINVAL, "earlystop.policy"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"earlystop\":{\"max_em_drop\":2}}", ES_EINVAL, "earlystop.max_em_drop"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"continue_final_message\":true}", ES_EINVAL, "continue_final_message"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"earlystop\":{\"polcy\":\"esc\"}}", ES_EINVAL, "earlystop"},
    {ES_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"model\":5}", ES_EINVAL, "model"},
    {ES_OAI_COMPLETIONS, "{}", ES_EINVAL, "prompt"},
    {ES_OAI_COMPLETIONS, "{\"prompt\":[]}", ES_EINVAL, "prompt"},
    {ES_OAI_COMPLETIONS, "{\"prompt\":[[1,2]]}", ES_EINVAL, "prompt"},
    {ES_OAI_COMPLETIONS, "{\"prompt\":\"a\",\"logprobs\":true}", ES_EINVAL, "logprobs"},
    {ES_OAI_COMPLETIONS, "{\"prompt\":\"a\",\"max_tokens\":0}", ES_EINVAL, "max_tokens"},
    {ES_OAI_COMPLETIONS, "{\"prompt\":\"a\",\"prompt\":\"b\"}", ES_EPARSE, ""},
};

static void test_request_bodies(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        const body_case *c = &bodies[i];
        es_oai_req *r = NULL;
        es_oai_error e;
        memset(&e, 0, sizeof e);
        int rc = es_oai_parse(c->kind, c->body, strlen(c->body), NULL, &r, &e);
        if (rc != c->rc) print_message("case %zu: %s -> %d %s\n", i, c->body, rc, e.message);
        assert_int_equal(rc, c->rc);
        if (rc) {
            assert_null(r);
            assert_int_equal(e.status, 400);
            assert_string_equal(e.type, "invalid_request_error");
            assert_true(strlen(e.message) > 10);
            if (c->param) assert_string_equal(e.param, c->param);
        }
        es_oai_req_free(r);
    }
    /* what the second case carried */
    es_oai_req *r = NULL;
    assert_int_equal(es_oai_parse(ES_OAI_CHAT, bodies[1].body, strlen(bodies[1].body), NULL, &r, NULL), ES_OK);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->max_tokens, 5);
    assert_int_equal(r->top_logprobs, 2);
    assert_true(r->logprobs && r->stream && r->include_usage && !r->continuous_usage);
    assert_int_equal(r->n_stop, 1);
    assert_true(r->has_seed && r->seed == -1);
    assert_true(isnan(r->temperature));
    es_sv_buf b = {0};
    assert_int_equal(es_sv_chat_prompt(r, &b, NULL), ES_OK);
    assert_string_equal(b.p, "hi\n");
    es_sv_buf_free(&b);
    es_oai_req_free(r);
    /* the limits are the server's */
    es_oai_limits lim;
    es_oai_limits_default(&lim);
    lim.max_n = 2;
    es_oai_error e;
    assert_int_equal(es_oai_parse(ES_OAI_CHAT, bodies[1].body, strlen(bodies[1].body), &lim, &r, &e), ES_EINVAL);
    assert_string_equal(e.param, "n");
}

/* ------------------------------------------------------------ families */

static void test_generic_family_is_the_models_rule(void **state)
{
    (void)state;
    es_family f;
    assert_int_equal(es_family_get("generic", &f), ES_OK);
    assert_int_equal(es_family_get("gpt", &f), ES_EINVAL);
    assert_int_equal(es_family_get("generic", &f), ES_OK);
    static const char *const texts[] = {
        "7+6=13.\nSo the answer is 34.\nWait, let me check: So the answer is 35.",
        "So the answer is 34", "So the answer is .", "So the answer is 12\nmore", "nothing here",
        "So the answer is So the answer is 5.", "So the answer is 04/03/2021.", "",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char a[64], b[64];
        int ha = es_family_sample_answer(&f, texts[i], a, sizeof a);
        int hb = es_task_extract_answer(texts[i], b, sizeof b);
        assert_int_equal(ha, hb);
        if (ha) assert_string_equal(a, b);
    }
    /* a probe: up to '.', nothing when a newline or the end comes first */
    char a[64];
    assert_int_equal(es_family_probe_answer(&f, "34.", 3, a, sizeof a), 1);
    assert_string_equal(a, "34");
    assert_int_equal(es_family_probe_answer(&f, "34\n.", 4, a, sizeof a), 0);
    assert_int_equal(es_family_probe_answer(&f, "34", 2, a, sizeof a), 0);
    assert_int_equal(es_family_probe_answer(&f, ".", 1, a, sizeof a), 0);
}

static void test_boxed_family(void **state)
{
    (void)state;
    es_family f;
    assert_int_equal(es_family_get("deepseek-r1", &f), ES_OK);
    assert_true(f.boxed && strstr(f.probe_cue, "\\boxed{"));
    char a[64];
    const char *out = "\\frac{1}{2}} \\]";
    assert_int_equal(es_family_probe_answer(&f, out, strlen(out), a, sizeof a), 1);
    assert_string_equal(a, "\\frac{1}{2}");
    assert_int_equal(es_family_probe_answer(&f, "\\frac{1}{2", 10, a, sizeof a), 0);
    assert_int_equal(es_family_sample_answer(&f, "<think>\\boxed{3}</think> so \\boxed{ 42 }.", a, sizeof a), 1);
    assert_string_equal(a, "42");
    assert_int_equal(es_family_sample_answer(&f, "no box", a, sizeof a), 0);
    assert_int_equal(es_family_sample_answer(&f, "\\boxed{\\{1,2\\}}", a, sizeof a), 1);
    assert_string_equal(a, "\\{1,2\\}");
}

/* ----------------------------------------------------- metrics and keys */

static void test_metrics_text(void **state)
{
    (void)state;
    es_sv_buf b = {0};
    es_sv_hist h;
    memset(&h, 0, sizeof h);
    es_sv_hist_add(&h, 0.0007);
    es_sv_hist_add(&h, 3.0);
    es_sv_hist_add(&h, 1000.0);
    es_sv_hist_print(&b, "x_seconds", "help", NULL, &h);
    assert_non_null(strstr(b.p, "# TYPE x_seconds histogram\n"));
    assert_non_null(strstr(b.p, "x_seconds_bucket{le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(b.p, "x_seconds_bucket{le=\"0.001\"} 1\n"));
    assert_non_null(strstr(b.p, "x_seconds_bucket{le=\"5\"} 2\n"));
    assert_non_null(strstr(b.p, "x_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(b.p, "x_seconds_count 3\n"));
    es_sv_buf_reset(&b);
    es_sv_metric(&b, "y", "gauge", "a gauge", "k=\"v\"", 0.95);
    es_sv_metric(&b, "z_total", "counter", NULL, NULL, 12345678901.0);
    assert_string_equal(b.p, "# HELP y a gauge\n# TYPE y gauge\ny{k=\"v\"} 0.95\nz_total 12345678901\n");
    es_sv_buf_free(&b);
}

static void test_auth(void **state)
{
    (void)state;
    assert_true(es_sv_auth_ok(NULL, NULL));
    assert_true(es_sv_auth_ok("Bearer sk-1", "sk-1"));
    assert_true(es_sv_auth_ok("bearer  sk-1", "sk-1"));
    assert_false(es_sv_auth_ok(NULL, "sk-1"));
    assert_false(es_sv_auth_ok("Bearer sk-12", "sk-1"));
    assert_false(es_sv_auth_ok("Bearer sk-", "sk-1"));
    assert_false(es_sv_auth_ok("Basic sk-1", "sk-1"));
    assert_false(es_sv_auth_ok("Bearer ", "sk-1"));
}

static void test_seed_streams(void **state)
{
    (void)state;
    uint64_t s, j, i;
    es_serve_seed_stream((5ULL << 20) + (7ULL << 10) + 3, &s, &j, &i);
    assert_true(s == 5 && j == 7 && i == 3);
    es_serve_seed_stream(42, &s, &j, &i);
    assert_true(s == 0 && j == 0 && i == 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_every_split),
        cmocka_unit_test(test_sse_limits),
        cmocka_unit_test(test_request_bodies),
        cmocka_unit_test(test_generic_family_is_the_models_rule),
        cmocka_unit_test(test_boxed_family),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_seed_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
