/* cmd_proxy.c - `earlystop proxy`: early stopping in front of any
 * OpenAI-compatible engine (vLLM, SGLang, llama.cpp's server, earlystop
 * serve). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "earlystop_io.h"
#include "serve_cli.h"
#include "sim_out.h"

static void proxy_help(void)
{
    printf("usage: earlystop proxy --upstream URL [--policy SPEC] [--port 8081] [options]\n\n"
           "An OpenAI-compatible endpoint (POST /v1/completions, /v1/chat/completions;\n"
           "GET /v1/models[/ID] (the upstream's), /healthz, /metrics) that forwards each\n"
           "request to the upstream engine and stops its reasoning early.  A request is\n"
           "drawn as samples (n = 1 each, seed + i) in rounds of the across rule's batch;\n"
           "every P tokens a probe (the text so far + the answer cue, a short greedy\n"
           "request) runs beside the stream, and the policy decides through the same event\n"
           "driver as `earlystop eval`'s replay.  On a stop the stream is cancelled and the\n"
           "client gets the cue and the model's short answer, finish_reason \"stop\"; with\n"
           "n > 1 the response has the samples drawn and the voted answer in its\n"
           "\"earlystop\" object (also: probes, tokens).  A request may carry\n"
           "\"earlystop\": {\"policy\": SPEC} to use another policy.\n\n"
           "  --upstream URL       the engine, e.g. http://127.0.0.1:8000 (required)\n"
           "  --upstream-key KEY   Bearer key for the upstream (default $EARLYSTOP_UPSTREAM_KEY;\n"
           "                       without one the client's Authorization is passed on)\n"
           "  --policy SPEC        stopping policy (default dynasor:k=3+ac-beta; see\n"
           "                       `earlystop eval --help`), '@file.json' for a policy file\n"
           "                       or a learned stopper (`earlystop learn --out`)\n"
           "  --probe-every P      tokens between probe points (default 32)\n"
           "  --probe-at WHERE     tokens: a forced probe every P tokens (default);\n"
           "                       paragraphs: at each paragraph end of the reasoning the\n"
           "                       answer written so far, read off the streamed text with\n"
           "                       its cues (no probe requests, no probe cost; a stop then\n"
           "                       asks the final answer with the answer cue).  A policy\n"
           "                       that reads text cues (a learned within head on\n"
           "                       p_conclude, p_check, p_end) always gets these\n"
           "  --answer-type T      how votes compare answers: text, number, date, choice, math\n"
           "                       (default text)\n"
           "  --family F           probe cue and answer reading: %s\n"
           "                       (default generic: \"So the answer is X.\")\n"
           "  --probe-cue TEXT     replace the family's probe cue (\\n for a newline)\n"
           "  --answer-cue TEXT    replace the cue before the final answer after a stop\n"
           "  --probe-max-tokens N the probe's answer at most (family default)\n"
           "  --max-n N            samples per request at most (default 64)\n"
           "  --max-upstream N     upstream connections at once (default 512)\n"
           "  --controller T       the online controller (docs/controller.md) moves the default\n"
           "                       policy's threshold to hold a target: tokens=B (mean tokens per\n"
           "                       request), kv=BYTES (mean peak KV), em-loss=PTS (EM points lost\n"
           "                       against the full run, measured by audits)\n"
           "  --controller-state F restore the controller from F when it exists; save it there\n"
           "                       on exit (SIGINT, SIGTERM)\n"
           "  --controller-window N  requests over which the target must hold (default 200)\n"
           "  --kv-bytes N         bytes one KV position holds, for kv= (default 1: positions)\n"
           "  --connect-timeout S  seconds to connect upstream (default 10)\n"
           "  --upstream-idle-timeout S  seconds of upstream silence before giving up\n"
           "                       (default 120): the client gets 504\n"
           "  --request-timeout S  seconds an upstream call may take in all (default 3600)\n",
           es_family_names());
    serve_listen_help(stdout, 8081);
    printf("\nexample (vLLM serving a reasoning model on port 8000):\n"
           "  earlystop proxy --upstream http://127.0.0.1:8000 --family deepseek-r1 \\\n"
           "      --policy dynasor:k=3 --answer-type math --port 8081\n"
           "  then point the OpenAI client at http://127.0.0.1:8081/v1.  docs/serving.md.\n");
}

/* "\n" in a cue given on the command line is a newline. */
static void unescape(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; *src && n + 1 < cap; src++) {
        if (src[0] == '\\' && src[1] == 'n') {
            dst[n++] = '\n';
            src++;
        } else {
            dst[n++] = *src;
        }
    }
    dst[n] = '\0';
}

static int seconds(const char *name, const char *v, double *out)
{
    if (cli_parse_double(v, out) || *out <= 0 || *out > 604800)
        return cli_usage_error("proxy", "%s: '%s' is not a number of seconds in (0, 604800]", name, v);
    return 0;
}

int cmd_proxy(int argc, char **argv)
{
    es_proxy_opts o;
    es_proxy_opts_init(&o);
    o.listen.log = stderr;
    const char *probe_cue = NULL, *answer_cue = NULL;
    long probe_max = 0;
    const char *target = NULL, *state = NULL, *ctl_opt = NULL; /* ctl_opt: an option of the controller */
    long window = 200;
    uint64_t kv_bytes = 1;
    int every_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            proxy_help();
            return CLI_OK;
        }
        int r = serve_listen_opt("proxy", argc, argv, &i, &o.listen);
        if (r < 0) return CLI_USAGE;
        if (r) continue;
        if (i + 1 >= argc) return cli_usage_error("proxy", "unknown option or missing value: '%s'", a);
        const char *v = argv[++i];
        long n;
        if (!strcmp(a, "--upstream")) o.upstream = v;
        else if (!strcmp(a, "--upstream-key")) o.upstream_key = v;
        else if (!strcmp(a, "--policy")) o.policy = v;
        else if (!strcmp(a, "--probe-every")) {
            if (cli_parse_long(v, 0, 1 << 20, &n)) return cli_usage_error("proxy", "--probe-every: '%s' is not in 0..1048576", v);
            o.probe_every = (int)n;
            every_given = 1;
        } else if (!strcmp(a, "--probe-at")) {
            if (es_probe_at_parse(v, &o.probe_at))
                return cli_usage_error("proxy", "--probe-at: '%s' is not one of tokens, paragraphs", v);
        } else if (!strcmp(a, "--answer-type")) {
            if (es_answer_type_parse(v, &o.answer_type))
                return cli_usage_error("proxy", "--answer-type: '%s' is not one of text, number, date, choice, math", v);
        } else if (!strcmp(a, "--family")) {
            if (es_family_get(v, &o.family))
                return cli_usage_error("proxy", "--family: '%s' is not one of %s", v, es_family_names());
        } else if (!strcmp(a, "--probe-cue")) probe_cue = v;
        else if (!strcmp(a, "--answer-cue")) answer_cue = v;
        else if (!strcmp(a, "--probe-max-tokens")) {
            if (cli_parse_long(v, 1, 4096, &probe_max)) return cli_usage_error("proxy", "--probe-max-tokens: '%s' is not in 1..4096", v);
        } else if (!strcmp(a, "--max-n")) {
            if (cli_parse_long(v, 1, 4096, &n)) return cli_usage_error("proxy", "--max-n: '%s' is not in 1..4096", v);
            o.max_n = (int)n;
        } else if (!strcmp(a, "--max-upstream")) {
            if (cli_parse_long(v, 1, 65536, &n)) return cli_usage_error("proxy", "--max-upstream: '%s' is not in 1..65536", v);
            o.max_upstream = (int)n;
        } else if (!strcmp(a, "--controller")) target = v;
        else if (!strcmp(a, "--controller-state")) state = v;
        else if (!strcmp(a, "--controller-window")) {
            ctl_opt = a;
            if (cli_parse_long(v, 1, 1000000, &window))
                return cli_usage_error("proxy", "--controller-window: '%s' is not in 1..1000000", v);
        } else if (!strcmp(a, "--kv-bytes")) {
            ctl_opt = a;
            if (cli_parse_size(v, 1, UINT64_MAX >> 1, &kv_bytes))
                return cli_usage_error("proxy", "--kv-bytes: '%s' is not a size >= 1 (K, M, G suffixes)", v);
        } else if (!strcmp(a, "--connect-timeout")) {
            if (seconds(a, v, &o.connect_timeout)) return CLI_USAGE;
        } else if (!strcmp(a, "--upstream-idle-timeout")) {
            if (seconds(a, v, &o.idle_timeout)) return CLI_USAGE;
        } else if (!strcmp(a, "--request-timeout")) {
            if (seconds(a, v, &o.request_timeout)) return CLI_USAGE;
        } else return cli_usage_error("proxy", "unknown option: '%s'", a);
    }
    if (!o.upstream) return cli_usage_error("proxy", "--upstream URL is required (e.g. http://127.0.0.1:8000)");
    if (state && !target) return cli_usage_error("proxy", "--controller-state goes with --controller");
    if (ctl_opt && !target) return cli_usage_error("proxy", "%s goes with --controller", ctl_opt);
    es_controller_opts co;
    if (target) {
        es_target_kind kind;
        double budget;
        if (sim_parse_target("proxy", "--controller", target, &kind, &budget)) return CLI_USAGE;
        es_controller_opts_init(&co, kind, budget);
        co.window = (uint32_t)window;
        co.kv_bytes_per_position = (double)kv_bytes;
        if (kind == ES_TARGET_EM_LOSS) o.controller_em_loss = budget;
    }
    if (probe_cue) unescape(o.family.probe_cue, sizeof o.family.probe_cue, probe_cue);
    if (answer_cue) unescape(o.family.answer_cue, sizeof o.family.answer_cue, answer_cue);
    if (probe_max) o.family.probe_max_tokens = (int)probe_max;
    if (!o.upstream_key) {
        const char *k = getenv("EARLYSTOP_UPSTREAM_KEY");
        if (k && *k) o.upstream_key = k;
    }
    serve_key_from_env("proxy", &o.listen);
    es_error err;
    memset(&err, 0, sizeof err);
    /* a spec, or @FILE: a policy file or a learned stopper's file with its
     * weights (the proxy loads it once; requests get clones) */
    es_policy *proto = NULL;
    int rc = es_policy_new_any(o.policy, &proto, &err);
    if (rc) return cli_report(&err, rc);
    es_policy_info info;
    es_policy_get_info(proto, &info);
    if (every_given && o.probe_at == ES_PROBE_AT_PARAGRAPHS) {
        es_policy_free(proto);
        return cli_usage_error("proxy", "--probe-every spaces forced probes (--probe-at tokens); paragraph probes "
                                        "come at paragraph ends");
    }
    if (info.needs_probes && o.probe_at == ES_PROBE_AT_TOKENS && o.probe_every <= 0) {
        es_policy_free(proto);
        return cli_usage_error("proxy", "policy '%s' decides on probes: give --probe-every > 0", o.policy);
    }
    if (target) {
        co.batch = info.batch;
        rc = es_controller_new(proto, &co, &o.controller, &err);
        if (!rc && state && access(state, F_OK) == 0) rc = es_controller_load(o.controller, state, &err);
    }
    int ran = !rc;
    if (!rc) {
        o.proto = proto; /* a policy or stopper file is read once */
        o.listen.stop_fd = serve_stop_pipe();
        o.listen.on_ready = serve_print_ready;
        o.listen.ctx = "proxy";
        rc = es_proxy_run(&o, &err);
        if (o.listen.stop_fd >= 0) close(o.listen.stop_fd);
    }
    es_policy_free(proto);
    /* saved whatever ended the loop (what was learnt is kept), never over a
     * state that could not be restored */
    if (ran && o.controller && state) {
        es_error serr;
        memset(&serr, 0, sizeof serr);
        int src = es_controller_save(o.controller, state, &serr);
        if (src && !rc) {
            rc = src;
            err = serr;
        }
    }
    es_controller_free(o.controller);
    return rc ? cli_report(&err, rc) : CLI_OK;
}
