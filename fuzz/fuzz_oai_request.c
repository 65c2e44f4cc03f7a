/*
 * fuzz_oai_request.c - libFuzzer target for the request bodies serve and
 * proxy accept (es_oai_parse), for both endpoints.
 *
 * Besides "no crash, no leak", it checks the contract the servers rely on:
 * a refusal is ES_EPARSE or ES_EINVAL with a 400, a type and a message (what
 * the client gets as an OpenAI error object) and no request; an accepted
 * request has n and the limits within range, a prompt or messages, and the
 * built-in model's chat prompt renders or is refused cleanly.
 *
 * Input layout: byte 0 = endpoint (even: completions, odd: chat), then the body.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop_serve.h"
#include "serve/sv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) return 0;
    int kind = data[0] & 1 ? ES_OAI_CHAT : ES_OAI_COMPLETIONS;
    es_oai_limits lim;
    es_oai_limits_default(&lim);
    es_oai_req *r = NULL;
    es_oai_error e;
    memset(&e, 0, sizeof e);
    int rc = es_oai_parse(kind, (const char *)data + 1, size - 1, &lim, &r, &e);
    if (rc) {
        if (r || (rc != ES_EPARSE && rc != ES_EINVAL && rc != ES_ENOMEM)) abort();
        if (rc != ES_ENOMEM && (e.status != 400 || !e.message[0] || strcmp(e.type, "invalid_request_error"))) abort();
        if (!memchr(e.message, '\0', sizeof e.message) || !memchr(e.param, '\0', sizeof e.param)) abort();
        return 0;
    }
    if (r->n < 1 || r->n > lim.max_n || r->n_stop < 0 || r->n_stop > lim.max_stop) abort();
    if (r->top_logprobs < 0 || r->top_logprobs > lim.max_top_logprobs) abort();
    if (!isnan(r->temperature) && !(r->temperature >= 0 && r->temperature <= 2)) abort();
    if (kind == ES_OAI_CHAT) {
        if (!r->messages || r->n_prompts != 1) abort();
        es_sv_buf b = {0};
        es_oai_error e2;
        int prc = es_sv_chat_prompt(r, &b, &e2);
        if (prc && prc != ES_EINVAL && prc != ES_ENOMEM) abort();
        es_sv_buf_free(&b);
    } else {
        if (!r->n_prompts || !r->prompts) abort();
        for (size_t i = 0; i < r->n_prompts; i++)
            if (!r->prompts[i]) abort();
    }
    es_oai_req_free(r);
    return 0;
}
