/*
 * earlystop_serve.h - serving (libearlystop-serve): an OpenAI-compatible
 * server for the built-in model, an early-stopping proxy in front of any
 * OpenAI-compatible engine (vLLM, SGLang, llama.cpp's server), and a recorder
 * of trace files from such an engine.  docs/serving.md.
 *
 * The layer sits above io and lm and brings libmicrohttpd (the HTTP server),
 * libcurl (the upstream client, its multi interface: one event loop, no
 * thread per request) and jansson.  Servers run until `stop_fd` becomes
 * readable (the CLI writes to a pipe from its SIGINT/SIGTERM handler): the
 * library installs no signal handler and keeps no global state.
 *
 * The parsers that face the network are public so that fuzzers and tests
 * reach them directly: es_oai_parse (request bodies), es_sse_reader (the
 * upstream's Server-Sent Events).
 */
#ifndef EARLYSTOP_SERVE_H
#define EARLYSTOP_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "earlystop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------- request parsing */

/* A parsed /v1/completions or /v1/chat/completions body (opaque). */
typedef struct es_oai_req es_oai_req;

enum { ES_OAI_COMPLETIONS = 0, ES_OAI_CHAT = 1 };

/* Why a body was refused: what the client gets as an OpenAI error object. */
typedef struct es_oai_error {
    int status;            /* HTTP status: 400, 413, ... */
    char type[40];         /* "invalid_request_error" */
    char param[64];        /* the offending field ("max_tokens", "messages[2].content"), "" if none */
    char message[320];
} es_oai_error;

/* Limits a server puts on what it accepts. */
typedef struct es_oai_limits {
    int max_n;             /* choices per request (n) */
    int max_top_logprobs;  /* alternatives per token */
    int max_stop;          /* stop sequences */
} es_oai_limits;

ES_API void es_oai_limits_default(es_oai_limits *l);
/* Parse and validate a request body of the given kind.  ES_EPARSE (not JSON)
 * or ES_EINVAL (wrong type, out of range), with err filled; ES_ENOMEM. */
ES_API int es_oai_parse(int kind, const char *body, size_t len, const es_oai_limits *lim, es_oai_req **out,
                        es_oai_error *err);
ES_API void es_oai_req_free(es_oai_req *r);

/* -------------------------------------------------------------- SSE reader */

/*
 * An incremental reader of text/event-stream (the WHATWG rules): lines end
 * in LF, CR or CRLF, split anywhere across reads; "data:" lines of one event
 * are joined with LF; "event:" names it; comments (":") and unknown fields
 * are ignored; an event ends at a blank line.  An event longer than
 * max_event bytes is refused (ES_ERANGE) rather than buffered without end.
 */
typedef struct es_sse_reader es_sse_reader;

/* One event: its type ("" when none) and data.  Non-zero stops the feed
 * and is returned by it. */
typedef int (*es_sse_fn)(void *ctx, const char *event, const char *data, size_t len);

ES_API int es_sse_reader_new(size_t max_event, es_sse_reader **out);
ES_API void es_sse_reader_free(es_sse_reader *r);
ES_API int es_sse_reader_feed(es_sse_reader *r, const char *buf, size_t n, es_sse_fn fn, void *ctx);
/* Bytes of an event begun and not yet ended (a stream cut mid-event). */
ES_API size_t es_sse_reader_pending(const es_sse_reader *r);

/* ------------------------------------------------------------ families */

/*
 * How to ask a model for its answer and how to read it: the probe cue (what
 * is appended to the reasoning so far), the cue of the final answer after a
 * stop, and where answers are.  Presets: "generic" (the built-in model and
 * plain chains: "So the answer is X."), "deepseek-r1" and "qwen3" (reasoning
 * in <think>...</think>, answers in \boxed{}); every field can be changed.
 */
typedef struct es_family {
    char name[32];
    char probe_cue[256];       /* appended to the text so far for a probe */
    char answer_cue[256];      /* appended after a stop, before the final answer */
    int cue_newline;           /* a cue starts on a new line when the text is mid-line */
    int probe_max_tokens;      /* a probe's answer at most */
    int answer_max_tokens;     /* the final answer at most */
    int boxed;                 /* answers are \boxed{...}; else the text after a cue up to '.' */
    char sample_cue[64];       /* generic: the phrase before a full sample's answer */
    char think_open[16];       /* "<think>" for the reasoning families, "" else */
    char think_close[16];
} es_family;

/* ES_EINVAL for an unknown name (the names are listed by es_family_names). */
ES_API int es_family_get(const char *name, es_family *out);
ES_API const char *es_family_names(void);
/* The answer in a probe's output (what followed the probe cue): 1 and the
 * answer in ans[cap], or 0 (none: the output ended or broke off before the
 * answer did). */
ES_API int es_family_probe_answer(const es_family *f, const char *out, size_t n, char *ans, size_t cap);
/* The answer of a whole sample (the last one it gives), 1 or 0. */
ES_API int es_family_sample_answer(const es_family *f, const char *text, char *ans, size_t cap);

/* ----------------------------------------------------- common server opts */

/* What every server here takes: the listening side and its limits. */
typedef struct es_listen_opts {
    const char *host;          /* default "127.0.0.1" (loopback) */
    int port;                  /* 0 = any free port (reported through on_ready) */
    const char *api_key;       /* clients must send "Authorization: Bearer KEY"; NULL = none */
    size_t max_body;           /* request body bytes (default 1 MiB) */
    size_t max_header;         /* request head bytes (default 16 KiB) */
    double header_timeout;     /* seconds to send a request head (default 10) */
    double body_timeout;       /* seconds to send the body (default 30) */
    unsigned idle_timeout;     /* seconds of silence before a connection is closed (default 60) */
    unsigned max_conns;        /* connections at once (default 1024) */
    int stop_fd;               /* readable = shut down (-1: run until an error) */
    /* the server listens: its address and actual port */
    void (*on_ready)(void *ctx, const char *host, int port);
    void *ctx;
    FILE *log;                 /* one line per request and per problem; NULL = quiet */
} es_listen_opts;

ES_API void es_listen_opts_init(es_listen_opts *o);

/* ----------------------------------------------------------------- serve */

typedef struct es_serve_opts {
    es_listen_opts listen;
    const char *model_path;    /* the model file (es_lm_load) */
    const char *model_name;    /* the id clients name (default "earlystop-builtin") */
    int threads;               /* the model's threads (default 1) */
    int max_seqs;              /* sequences stepped together (default 32) */
    int max_queue;             /* choices waiting beyond those (default 4096): then 503 */
    uint64_t seed;             /* seeds of requests that give none (default from the clock) */
} es_serve_opts;

ES_API void es_serve_opts_init(es_serve_opts *o);
/* Serve until stop_fd is readable; 0, or an error (bind failed, model). */
ES_API int es_serve_run(const es_serve_opts *o, es_error *err);

/* Sampling streams: a request's `seed` e (choice c draws seed e + c, as vLLM
 * does) is the stream `earlystop generate --seed S` gives sample i of item j,
 * e = S * 2^20 + j * 2^10 + i (i, j < 1024).  These give S, j, i. */
ES_API void es_serve_seed_stream(uint64_t e, uint64_t *seed, uint64_t *item, uint64_t *sample);

/* ------------------------------------------------------------ probe points */

/* Where a sample is probed: every `probe_every` tokens with a forced answer
 * (a short greedy request with the family's probe cue), or at each paragraph
 * end of the reasoning with the answer written so far read off the text (no
 * request, no cost; docs/serving.md, "Paragraph probes"). */
typedef enum es_probe_at { ES_PROBE_AT_TOKENS = 0, ES_PROBE_AT_PARAGRAPHS = 1 } es_probe_at;

/* "tokens" or "paragraphs"; ES_EINVAL for anything else. */
ES_API int es_probe_at_parse(const char *name, es_probe_at *out);
ES_API const char *es_probe_at_name(es_probe_at a);

/* ----------------------------------------------------------------- proxy */

typedef struct es_proxy_opts {
    es_listen_opts listen;
    const char *upstream;      /* base URL: "http://127.0.0.1:8000" (the /v1/... paths are added) */
    const char *upstream_key;  /* Bearer key sent upstream; NULL = the client's Authorization is passed on */
    const char *policy;        /* default policy: a spec ("dynasor:k=3+ac-beta") or @FILE */
    const es_policy *proto;    /* that policy, made by the caller (requests get clones);
                                  NULL: the proxy makes it from `policy` */
    es_answer_type answer_type;/* how answers compare in votes */
    int probe_every;           /* tokens between probe points */
    es_probe_at probe_at;      /* forced probes every probe_every tokens (default), or paragraph probes */
    int max_n;                 /* samples per request at most */
    es_family family;
    double connect_timeout;    /* seconds to connect upstream (default 10) */
    double first_byte_timeout; /* seconds until the upstream's first byte (default 600) */
    double idle_timeout;       /* seconds of upstream silence mid-stream (default 120) */
    double request_timeout;    /* seconds a whole upstream call may take (default 3600) */
    int max_upstream;          /* upstream connections at once (default 512) */
    /* The online controller (es_controller, earlystop.h) over the default
     * policy, or NULL.  The caller makes it (for o->policy), restores and
     * saves its state (es_controller_load / es_controller_save); the proxy
     * only calls it, on its loop thread: a ticket per request that runs the
     * default policy (the live threshold, or an audit drawn to the cap),
     * the samples drawn observed at the end, its status in /metrics. */
    es_controller *controller;
    double controller_em_loss; /* its em-loss budget (a fraction; 0 for a cost target):
                                  a request's "earlystop": {"max_em_drop": x} (a fraction) below it
                                  runs at the most conservative candidate */
} es_proxy_opts;

ES_API void es_proxy_opts_init(es_proxy_opts *o);
ES_API int es_proxy_run(const es_proxy_opts *o, es_error *err);

/* ---------------------------------------------------------------- record */

typedef struct es_record_opts {
    const char *upstream;
    const char *upstream_key;
    const char *questions;     /* JSON Lines: {"id","question"|"prompt"|"messages","gold","answer_type","task"} */
    const char *out;           /* trace file ("-" = stdout) */
    const char *model;         /* the upstream's model id (sent as "model"; NULL = none) */
    int chat;                  /* use /v1/chat/completions (default 1); 0 = /v1/completions */
    int samples;               /* per question */
    int probe_every;           /* 0 = no probes */
    es_probe_at probe_at;      /* forced probes every probe_every tokens (default), or paragraph probes */
    int max_tokens;            /* per sample (0 = the engine's default) */
    double temperature;
    int have_seed;
    uint64_t seed;             /* sample i of question j gets seed + j * 1024 + i */
    int concurrency;           /* samples in flight at once (default 16) */
    es_answer_type default_type;
    es_family family;
    double connect_timeout, idle_timeout, request_timeout;
    int stop_fd;
    FILE *progress;            /* progress lines; NULL = none */
    FILE *log;                 /* each question left out and why; NULL = none */
} es_record_opts;

typedef struct es_record_summary {
    size_t items, samples, probes, failed;
    uint64_t tokens, probe_tokens;
    double seconds;
} es_record_summary;

ES_API void es_record_opts_init(es_record_opts *o);
ES_API int es_record_run(const es_record_opts *o, es_record_summary *sum, es_error *err);

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_SERVE_H */
