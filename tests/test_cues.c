/*
 * test_cues.c - probe cues: es_text_cues (core: what one paragraph says)
 * and es_paragraph_cues (io: which paragraph each probe of a stored text
 * ends).  On the shared *_think files every sample's probes line up with
 * its paragraphs, the end cue falls on the last probe, and a concluding
 * paragraph's number is the final answer far more often than another's:
 * the reason the learned stopper reads the cues.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "earlystop.h"
#include "earlystop_io.h"
#include "refdata.h"

static uint32_t cues_of(const char *s) { return es_text_cues(s, strlen(s)); }

static void test_conclude(void **state)
{
    (void)state;
    const char *yes[] = {
        "Therefore, Janet makes $18 every day.",
        "So 3 + 4 = 7, thus she has 9 left.",
        "The answer is 42.",
        "so THE ANSWER IS 42",
        "**Final Answer**",
        "I think the answer should be 12.",
        "So the answer: 5",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!(cues_of(yes[i]) & ES_CUE_CONCLUDE)) fail_msg("no conclusion read in '%s'", yes[i]);
    const char *no[] = {
        "She eats 3 eggs, so 16 - 3 = 13.",
        "He spoke thusly about 12 apples.",      /* whole words only */
        "Furthermore the answers differ: 3, 4.", /* "answers is" is not "answer is" */
        "",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (cues_of(no[i]) & ES_CUE_CONCLUDE) fail_msg("a conclusion read in '%s'", no[i]);
    assert_int_equal(cues_of(""), ES_CUE_READ); /* read, nothing there */
    assert_int_equal(es_text_cues(NULL, 0), ES_CUE_READ);
}

static void test_check(void **state)
{
    (void)state;
    const char *yes[] = {
        "Wait, that is not right.",
        "  **Wait**, let me see.",
        "Hmm, 12 or 13?",
        "Let me double-check: 3 + 4 = 7.",
        "Let me recalculate the total.", /* "re*" takes a prefix */
        "Let\xe2\x80\x99s verify the sum.",  /* a curly apostrophe */
        "Alternatively, count the eggs.",
        "But wait, she also bakes.",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!(cues_of(yes[i]) & ES_CUE_CHECK)) fail_msg("no re-check read in '%s'", yes[i]);
    const char *no[] = {
        "She will wait for 3 days.",   /* only at the paragraph's start */
        "Waiting time is 5 minutes.",  /* whole word */
        "Let me compute 3 + 4 = 7.",
        "Letters: a, b.",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (cues_of(no[i]) & ES_CUE_CHECK) fail_msg("a re-check read in '%s'", no[i]);
    /* the length bounds the read: no terminator needed, none read past */
    const char buf[] = {'W', 'a', 'i', 't', 'X'};
    assert_true(es_text_cues(buf, 4) & ES_CUE_CHECK);
    assert_false(es_text_cues(buf, 5) & ES_CUE_CHECK);
    assert_false(es_text_cues(buf, 3) & ES_CUE_CHECK);
}

static void test_paragraphs(void **state)
{
    (void)state;
    const char *t = "Intro with no number.\n\nFirst, 3 + 4 = 7.\n \t\nWait, check 7.\n\n\n"
                    "Therefore the answer is 7.\n</think>\n\nThe answer is \\boxed{7}.";
    uint32_t c[4];
    memset(c, 0xff, sizeof c);
    assert_int_equal(es_paragraph_cues(t, 3, c), ES_OK);
    assert_int_equal(c[0], ES_CUE_READ);
    assert_int_equal(c[1], ES_CUE_READ | ES_CUE_CHECK);
    assert_int_equal(c[2], ES_CUE_READ | ES_CUE_CONCLUDE | ES_CUE_END);
    assert_int_equal(c[3], 0xffffffffu); /* only n written */
    /* all four paragraphs; a fifth probe has no paragraph to end */
    assert_int_equal(es_paragraph_cues(t, 4, c), ES_OK);
    assert_int_equal(c[0], ES_CUE_READ);
    assert_int_equal(es_paragraph_cues(t, 5, c), ES_EFORMAT);
    /* without </think> the whole text is the reasoning, and nothing ends it */
    assert_int_equal(es_paragraph_cues("A 1.\n\nTherefore 2.", 2, c), ES_OK);
    assert_int_equal(c[1], ES_CUE_READ | ES_CUE_CONCLUDE);
    assert_int_equal(es_paragraph_cues(NULL, 1, c), ES_EFORMAT);
    assert_int_equal(es_paragraph_cues("x", 0, c), ES_OK);
    assert_int_equal(es_paragraph_cues("\n\n  \n\n", 1, c), ES_EFORMAT); /* blank paragraphs do not count */
}

/* Over a shared *_think file: every sample lines up, `end` is on each
 * sample's last probe, and P(probe = final | conclude) > P(probe = final |
 * not).  Returns the two shares. */
static void check_file(const char *name, double *with, double *without)
{
    char path[600];
    snprintf(path, sizeof path, "%s/traces/%s", es_ref_data_dir(), name);
    es_trace_reader *r;
    es_error err = {0};
    assert_int_equal(es_trace_reader_open(path, 0, &r, &err), ES_OK);
    es_item it;
    size_t n[2] = {0, 0}, final[2] = {0, 0}, samples = 0;
    uint32_t cues[512];
    while (es_trace_reader_next(r, &it, &err) == ES_OK) {
        const es_sample *s = &it.samples[0];
        if (!s->n_probes) continue;
        assert_true(s->n_probes <= 512);
        assert_int_equal(es_paragraph_cues(s->text, s->n_probes, cues), ES_OK);
        samples++;
        for (size_t j = 0; j < s->n_probes; j++) {
            assert_int_equal((cues[j] & ES_CUE_END) != 0, j + 1 == s->n_probes);
            int k = (cues[j] & ES_CUE_CONCLUDE) != 0;
            n[k]++;
            final[k] += s->probes[j].answer && s->answer && !strcmp(s->probes[j].answer, s->answer);
        }
    }
    es_trace_reader_free(r);
    assert_true(samples > 300);
    assert_true(n[0] > 0 && n[1] > 0);
    *with = (double)final[1] / n[1];
    *without = (double)final[0] / n[0];
    print_message("%s: %zu samples; probe = final: %.3f of %zu concluding probes, %.3f of %zu others\n", name,
                  samples, *with, n[1], *without, n[0]);
}

static void test_shared_think_files(void **state)
{
    (void)state;
    char p[600];
    snprintf(p, sizeof p, "%s/traces/qwq32b_gsm8k_think.jsonl", es_ref_data_dir());
    if (access(p, R_OK)) {
        print_message("shared data absent: skipping\n");
        skip();
    }
    const char *files[] = {"qwq32b_gsm8k_think.jsonl", "r1qwen32b_gsm8k_think.jsonl"};
    for (size_t i = 0; i < 2; i++) {
        double with, without;
        check_file(files[i], &with, &without);
        assert_true(with > without + 0.1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conclude),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_paragraphs),
        cmocka_unit_test(test_shared_think_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
