/* cmd_record.c - `earlystop record`: trace files from any OpenAI-compatible
 * engine (samples, probes with answers and confidences). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "earlystop_io.h"
#include "serve_cli.h"

static void record_help(void)
{
    printf("usage: earlystop record --upstream URL --questions Q.jsonl [--samples K]\n"
           "                        [--probe-every P | --probe-at paragraphs] [--out F] [options]\n\n"
           "Ask an OpenAI-compatible engine (vLLM, SGLang, llama.cpp's server, earlystop serve)\n"
           "K samples per question and write them as trace format v1 (docs/trace-format.md):\n"
           "each sample's answer, tokens, text and mean token probability, and a probe every\n"
           "P tokens (the text so far + the answer cue, a short greedy request) with its\n"
           "answer, confidence, window confidence and cost.  Then `earlystop eval` and\n"
           "`earlystop tune` replay stopping rules on your own model.\n\n"
           "Q.jsonl: one question per line: {\"id\": ..., \"question\": TEXT (or \"prompt\" for\n"
           "/v1/completions, or \"messages\"), \"gold\": ANSWER or [ANSWERS], optional\n"
           "\"answer_type\", \"task\", \"max_tokens\"}.\n\n"
           "  --upstream URL       the engine, e.g. http://127.0.0.1:8000 (required)\n"
           "  --upstream-key KEY   Bearer key (default $EARLYSTOP_UPSTREAM_KEY)\n"
           "  --questions FILE     the questions ('-' = stdin; required)\n"
           "  --out F              trace file (default -: stdout); replaced only on success\n"
           "  --model NAME         the \"model\" sent upstream\n"
           "  --samples K          samples per question (default 1)\n"
           "  --probe-every P      tokens between probes (default 32; 0 = none)\n"
           "  --probe-at WHERE     tokens: a forced probe every P tokens (default);\n"
           "                       paragraphs: at each paragraph end of the reasoning (a\n"
           "                       blank line; the text before </think>), the answer written\n"
           "                       so far read off the text (number: the last number), no\n"
           "                       request, no cost, with the paragraph's cues (conclude,\n"
           "                       check, end): what the *_think files hold\n"
           "  --max-tokens N       tokens per sample at most (default: the engine's)\n"
           "  --temperature T      sampling temperature (default: the engine's)\n"
           "  --seed S             sample i of question j gets seed S + j*1024 + i\n"
           "  --completions        /v1/completions with \"question\\n\" as the prompt\n"
           "                       (default: /v1/chat/completions)\n"
           "  --answer-type T      for questions without one (default text)\n"
           "  --family F           probe cue and answer reading: %s\n"
           "  --concurrency N      samples in flight at once (default 16)\n"
           "  --upstream-idle-timeout S  seconds of silence before a sample fails (default 120)\n"
           "  --json               summary as JSON on stdout (needs --out FILE)\n\n"
           "Questions whose samples fail upstream are left out and counted; the exit status\n"
           "is then 1.\n", es_family_names());
}

int cmd_record(int argc, char **argv)
{
    es_record_opts o;
    es_record_opts_init(&o);
    o.out = "-";
    int json = 0, every_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            record_help();
            return CLI_OK;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--completions")) { o.chat = 0; continue; }
        if (i + 1 >= argc) return cli_usage_error("record", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        long n;
        double d;
        if (!strcmp(a, "--upstream")) o.upstream = v;
        else if (!strcmp(a, "--upstream-key")) o.upstream_key = v;
        else if (!strcmp(a, "--questions")) o.questions = v;
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--model")) o.model = v;
        else if (!strcmp(a, "--samples")) {
            if (cli_parse_long(v, 1, 100000, &n)) return cli_usage_error("record", "--samples: '%s' is not in 1..100000", v);
            o.samples = (int)n;
        } else if (!strcmp(a, "--probe-every")) {
            if (cli_parse_long(v, 0, 1 << 20, &n)) return cli_usage_error("record", "--probe-every: '%s' is not in 0..1048576", v);
            o.probe_every = (int)n;
            every_given = 1;
        } else if (!strcmp(a, "--probe-at")) {
            if (es_probe_at_parse(v, &o.probe_at))
                return cli_usage_error("record", "--probe-at: '%s' is not one of tokens, paragraphs", v);
        } else if (!strcmp(a, "--max-tokens")) {
            if (cli_parse_long(v, 1, 1 << 24, &n)) return cli_usage_error("record", "--max-tokens: '%s' is not a whole number >= 1", v);
            o.max_tokens = (int)n;
        } else if (!strcmp(a, "--temperature")) {
            if (cli_parse_double(v, &d) || d < 0 || d > 2) return cli_usage_error("record", "--temperature: '%s' is not in 0..2", v);
            o.temperature = d;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_long(v, 0, LONG_MAX, &n)) return cli_usage_error("record", "--seed: '%s' is not a whole number >= 0", v);
            o.seed = (uint64_t)n;
            o.have_seed = 1;
        } else if (!strcmp(a, "--answer-type")) {
            if (es_answer_type_parse(v, &o.default_type))
                return cli_usage_error("record", "--answer-type: '%s' is not one of text, number, date, choice, math", v);
        } else if (!strcmp(a, "--family")) {
            if (es_family_get(v, &o.family)) return cli_usage_error("record", "--family: '%s' is not one of %s", v, es_family_names());
        } else if (!strcmp(a, "--concurrency")) {
            if (cli_parse_long(v, 1, 4096, &n)) return cli_usage_error("record", "--concurrency: '%s' is not in 1..4096", v);
            o.concurrency = (int)n;
        } else if (!strcmp(a, "--upstream-idle-timeout")) {
            if (cli_parse_double(v, &d) || d <= 0) return cli_usage_error("record", "--upstream-idle-timeout: '%s' is not a number of seconds > 0", v);
            o.idle_timeout = d;
        } else return cli_usage_error("record", "unknown option: '%s'", a);
    }
    if (!o.upstream) return cli_usage_error("record", "--upstream URL is required");
    if (every_given && o.probe_at == ES_PROBE_AT_PARAGRAPHS)
        return cli_usage_error("record", "--probe-every spaces forced probes (--probe-at tokens); paragraph probes "
                                         "come at paragraph ends");
    if (!o.questions) return cli_usage_error("record", "--questions FILE is required");
    if (json && !strcmp(o.out, "-")) return cli_usage_error("record", "--json writes the summary to stdout: give --out FILE");
    if (!o.upstream_key) {
        const char *k = getenv("EARLYSTOP_UPSTREAM_KEY");
        if (k && *k) o.upstream_key = k;
    }
    o.stop_fd = serve_stop_pipe();
    o.progress = isatty(2) ? stderr : NULL;
    o.log = stderr; /* why a question was left out, terminal or not */
    es_error err;
    memset(&err, 0, sizeof err);
    es_record_summary sum;
    int rc = es_record_run(&o, &sum, &err);
    if (o.stop_fd >= 0) close(o.stop_fd);
    if (rc) return cli_report(&err, rc);
    FILE *fp = strcmp(o.out, "-") ? stdout : stderr;
    if (json)
        fprintf(fp, "{\"items\":%zu,\"failed\":%zu,\"samples\":%zu,\"probes\":%zu,\"tokens\":%llu,\"probe_tokens\":%llu,"
                    "\"seconds\":%.3f}\n", sum.items, sum.failed, sum.samples, sum.probes,
                (unsigned long long)sum.tokens, (unsigned long long)sum.probe_tokens, sum.seconds);
    else
        fprintf(fp, "record: %zu questions (%zu failed), %zu samples, %zu probes, %llu tokens + %llu probe tokens, %.1f s\n",
                sum.items, sum.failed, sum.samples, sum.probes, (unsigned long long)sum.tokens,
                (unsigned long long)sum.probe_tokens, sum.seconds);
    return sum.failed ? CLI_FAIL : CLI_OK;
}
