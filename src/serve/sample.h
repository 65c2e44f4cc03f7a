/* sample.h - one sample drawn from the upstream as a stream, with the probes
 * made on it and the final answer asked after a stop (sample.c).  Shared by
 * the proxy and the recorder. */
#ifndef ES_SV_SAMPLE_H
#define ES_SV_SAMPLE_H

#include "upstream.h"

/* what a call is for (es_sv_call.kind); the proxy's /v1/models forward is ES_SV_CALL_MODELS */
enum { ES_SV_CALL_SAMPLE = 1, ES_SV_CALL_PROBE = 2, ES_SV_CALL_ANSWER = 3, ES_SV_CALL_MODELS = 4 };

/* What every call of one client request shares. */
typedef struct es_sv_target {
    es_sv_up *up;
    int chat;                  /* /v1/chat/completions, else /v1/completions */
    json_t *base;              /* the client's body without what the proxy sets */
    const es_family *fam;
    const char *client_auth;   /* passed on when no upstream key is set */
    int has_seed;
    int64_t seed;              /* sample i draws seed + i */
    int max_tokens;            /* per sample, 0 = the engine's default */
    int top_k;                 /* alternatives per token asked for (window confidence) */
    int continuous_usage;      /* ask for usage in every chunk */
    int keep_logprobs;         /* the client wants the tokens' logprobs */
    int window;                /* tokens of the sliding-window confidence */
    int paragraphs;            /* free text-proxy probes at paragraph ends (es_sv_sample_paragraphs) */
    es_answer_type answer_type;/* how a paragraph probe reads the answer so far */
} es_sv_target;

enum { PROBE_NONE = 0, PROBE_RUNNING, PROBE_DONE, PROBE_FAILED };

typedef struct es_sv_sample es_sv_sample;

typedef struct es_sv_probe {
    es_sv_sample *s;
    uint32_t at;
    int state;
    es_sv_call *call;
    int has_answer;
    char answer[128];
    float confidence;          /* mean probability of the tokens it decoded (NaN unknown) */
    float window_confidence;   /* the sample's sliding-window confidence at `at` */
    uint32_t prompt_tokens, completion_tokens;
    es_sv_buf out;             /* what it decoded, the stop sequence included */
    char error[160];
    int is_free;               /* a paragraph probe: read off the text, no request, no cost */
    uint32_t cues;             /* its paragraph's text cues (ES_CUE_*), 0 for forced probes */
} es_sv_probe;

enum { SAMPLE_IDLE = 0, SAMPLE_RUNNING, SAMPLE_DONE, SAMPLE_FAILED, SAMPLE_CANCELLED };

struct es_sv_sample {
    es_sv_target *t;
    int index;
    void *owner;
    int state;
    es_sv_call *call;
    es_sse_reader *sse;
    es_sv_buf text;            /* the model's output so far (reasoning inside the think tags) */
    uint32_t n;                /* tokens so far */
    uint32_t cap;
    uint32_t *tok_end;         /* [cap] where each token ends in text */
    float *tok_lp;             /* [cap] its log-probability (NaN unknown) */
    float *tok_conf;           /* [cap] DeepConf's token confidence (NaN unknown) */
    uint8_t *tok_kind;         /* [cap] 1 = reasoning, 0 = content */
    json_t *lp_json;           /* the logprob entries as received (when the client wants them) */
    int in_reasoning, had_reasoning;
    int usage_seen;            /* completion tokens the usage counted so far */
    uint32_t prompt_tokens;    /* from the usage (0 = unknown) */
    char finish[24];           /* the upstream's finish_reason */
    char model[128];
    es_sv_probe *probes;       /* [n_points]: probe k at point (k + 1) * every, or paragraph probe k */
    uint32_t n_points, cap_points;
    /* an error: the upstream's status and body, or what went wrong */
    long err_status;
    es_sv_buf err_body;
    char err_msg[256];
    double t_start, t_first;
    uint64_t bytes;
    es_para_split para;        /* paragraphs of the reasoning seen so far (target->paragraphs) */
    int para_has;              /* an answer has been written so far */
    char para_answer[128];     /* the answer written so far */
};

int es_sv_sample_init(es_sv_sample *s, es_sv_target *t, int index, void *owner);
void es_sv_sample_release(es_sv_sample *s);
/* Start the stream. */
int es_sv_sample_start(es_sv_sample *s);
/* News on the sample's stream call: new chunks parsed, or its end.
 * Returns 1 when something changed. */
int es_sv_sample_on_call(es_sv_sample *s, es_sv_call *c);
/* Stop the stream and every probe. */
void es_sv_sample_cancel(es_sv_sample *s);
/* Bytes of text up to token `at` (the prefix a probe at `at` sees). */
size_t es_sv_sample_prefix(const es_sv_sample *s, uint32_t at);
/* The probe at point k (made if not yet). */
es_sv_probe *es_sv_sample_probe(es_sv_sample *s, uint32_t k, uint32_t at);
/* News on a probe's call. */
void es_sv_probe_on_call(es_sv_probe *p, es_sv_call *c);
/* A short greedy request for the final answer after `at` tokens with the
 * answer cue (owner: `owner`, kind ES_SV_CALL_ANSWER). */
es_sv_call *es_sv_sample_answer_call(es_sv_sample *s, uint32_t at, void *owner);
/* The text a probe or answer call decoded (its stop sequence included) from
 * its JSON response; 0, or -1 with msg set.  *completion and *prompt get the
 * usage. */
int es_sv_decoded(es_sv_call *c, int chat, es_sv_buf *out, uint32_t *prompt, uint32_t *completion, float *conf,
                  char *msg, size_t cap);
/* Mean probability of the sampled tokens (NaN when unknown). */
float es_sv_sample_confidence(const es_sv_sample *s);
/* The sliding-window confidence at `at` tokens. */
float es_sv_sample_window(const es_sv_sample *s, uint32_t at);
/* Paragraph probes (target->paragraphs): at each paragraph end of the
 * reasoning the text so far has reached, a free probe (is_free, PROBE_DONE)
 * with the answer written so far, `at` = the tokens that cover the
 * paragraph, and its cues; a paragraph before any answer gives none.  Runs
 * by itself on every chunk (es_sv_sample_on_call); with `final` the text is
 * complete.  0, or ES_ENOMEM. */
int es_sv_sample_paragraphs(es_sv_sample *s, int final);
/* Tokens whose text ends at or before byte pos of the text. */
uint32_t es_sv_sample_tokens_before(const es_sv_sample *s, size_t pos);
/* Tokens a probe cost: what it decoded plus the tokens of the cue. */
uint32_t es_sv_probe_cost(const es_sv_probe *p);

#endif
