/* cmd_serve.c - `earlystop serve`: the built-in model behind the OpenAI API
 * (POST /v1/completions, /v1/chat/completions, GET /v1/models), streaming
 * or not, with requests batched through the model. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "earlystop_lm.h"
#include "lm_cli.h"
#include "serve_cli.h"

static void serve_help(void)
{
    printf("usage: earlystop serve [--host 127.0.0.1] [--port 8080] [--model PATH] [--api-key KEY]\n"
           "                       [--threads N] [--max-seqs N] [options]\n\n"
           "Serve the built-in model with the OpenAI API until SIGINT or SIGTERM:\n"
           "  POST /v1/completions        prompt (a string or an array of them)\n"
           "  POST /v1/chat/completions   messages (the texts joined by newlines)\n"
           "  GET  /v1/models, /healthz, /metrics (Prometheus)\n"
           "JSON responses, or Server-Sent Events with \"stream\": true (a role delta first\n"
           "in chat, content deltas, finish_reason, usage with stream_options.include_usage,\n"
           "then data: [DONE]); n, max_tokens, temperature, seed, stop, logprobs and\n"
           "top_logprobs.  Concurrent requests share the model's forward steps.\n\n"
           "Seeds: choice c of a request with \"seed\": e draws seed e + c (vLLM's rule), and\n"
           "seed S*1048576 + j*1024 + i is the stream `earlystop generate --seed S` draws\n"
           "sample i of item j from, so serve reproduces generate's samples.\n\n"
           "  --model PATH         model file (default: $ES_MODEL, else data/model.bin)\n"
           "  --model-name NAME    the model id clients use (default earlystop-builtin)\n"
           "  --threads N          " LM_THREADS_HELP "\n"
           "  --max-seqs N         sequences stepped together (default 32)\n"
           "  --max-queue N        choices waiting beyond those (default 4096): then 503\n"
           "  --seed S             seeds of requests that give none (default: the clock)\n");
    serve_listen_help(stdout, 8080);
    printf("\nexample:\n"
           "  earlystop serve --port 8080 &\n"
           "  curl -N http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n"
           "       -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Compute (3+4)*2.\"}],\"stream\":true}'\n");
}

int cmd_serve(int argc, char **argv)
{
    es_serve_opts o;
    es_serve_opts_init(&o);
    o.listen.log = stderr;
    int threads = 1;
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            serve_help();
            return CLI_OK;
        }
        int r = serve_listen_opt("serve", argc, argv, &i, &o.listen);
        if (r < 0) return CLI_USAGE;
        if (r) continue;
        long n;
        if (!strcmp(a, "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(a, "--model-name") && i + 1 < argc && *argv[i + 1]) o.model_name = argv[++i];
        else if (!strcmp(a, "--threads") && i + 1 < argc) {
            if (cli_parse_threads("serve", argv[++i], &threads)) return CLI_USAGE;
        } else if (!strcmp(a, "--max-seqs") && i + 1 < argc) {
            if (cli_parse_long(argv[++i], 1, 4096, &n))
                return cli_usage_error("serve", "--max-seqs: '%s' is not in 1..4096", argv[i]);
            o.max_seqs = (int)n;
        } else if (!strcmp(a, "--max-queue") && i + 1 < argc) {
            if (cli_parse_long(argv[++i], 1, 1 << 24, &n))
                return cli_usage_error("serve", "--max-queue: '%s' is not in 1..16777216", argv[i]);
            o.max_queue = (int)n;
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            if (cli_parse_long(argv[++i], 0, LONG_MAX, &n))
                return cli_usage_error("serve", "--seed: '%s' is not a whole number >= 0", argv[i]);
            o.seed = (uint64_t)n;
        } else return cli_usage_error("serve", "unknown option or missing value: '%s'", a);
    }
    serve_key_from_env("serve", &o.listen);
    char model_buf[4096];
    o.model_path = lm_model_path(model, model_buf, sizeof model_buf);
    o.threads = threads;
    o.listen.stop_fd = serve_stop_pipe();
    o.listen.on_ready = serve_print_ready;
    o.listen.ctx = "serve";
    es_error err;
    memset(&err, 0, sizeof err);
    int rc = es_serve_run(&o, &err);
    if (o.listen.stop_fd >= 0) close(o.listen.stop_fd);
    return rc ? cli_report(&err, rc) : CLI_OK;
}
