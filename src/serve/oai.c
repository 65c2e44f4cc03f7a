/* oai.c - OpenAI request bodies: parse, check every field a server here
 * reads, and say what is wrong in the words the OpenAI API uses (a 400 with
 * the field named), so that a client's mistake never reaches a model.
 *
 * Fields nobody here reads are left alone (the proxy forwards them).  What
 * is read: model, prompt (completions: a string or an array of strings) or
 * messages (chat), n, max_tokens / max_completion_tokens, temperature,
 * top_p, seed, stop, stream, stream_options.include_usage and
 * .continuous_usage_stats, logprobs (+ top_logprobs for chat), echo,
 * continue_final_message, and the proxy's "earlystop" object.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sv.h"

void es_oai_limits_default(es_oai_limits *l)
{
    l->max_n = 128;
    l->max_top_logprobs = 20;
    l->max_stop = 4;
}

static int fail(es_oai_error *err, int code, int status, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static int fail(es_oai_error *err, int code, int status, const char *param, const char *fmt, ...)
{
    if (!err) return code;
    err->status = status;
    snprintf(err->type, sizeof err->type, "invalid_request_error");
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* An integer in [lo, hi]; absent or null leaves *out. */
static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out, es_oai_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) && fabs(json_real_value(v)) < 9e15)
        *out = (long long)json_real_value(v);
    else if (json_is_integer(v)) *out = json_integer_value(v);
    else return fail(err, ES_EINVAL, 400, key, "'%s' must be an integer, not %s", key, type_name(v));
    if (*out < lo || *out > hi)
        return fail(err, ES_EINVAL, 400, key, "'%s' must be in %lld..%lld, not %lld", key, lo, hi, *out);
    return 0;
}

static int get_num(json_t *o, const char *key, double lo, double hi, double *out, es_oai_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return fail(err, ES_EINVAL, 400, key, "'%s' must be a number, not %s", key, type_name(v));
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return fail(err, ES_EINVAL, 400, key, "'%s' must be in %g..%g, not %g", key, lo, hi, x);
    *out = x;
    return 0;
}

static int get_bool(json_t *o, const char *key, int *out, es_oai_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return fail(err, ES_EINVAL, 400, key, "'%s' must be a boolean, not %s", key, type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int get_stop(json_t *o, es_oai_req *r, const es_oai_limits *lim, es_oai_error *err)
{
    json_t *v = json_object_get(o, "stop");
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        if (!json_string_length(v)) return 0;
        r->stop[r->n_stop++] = json_string_value(v);
        return 0;
    }
    if (!json_is_array(v)) return fail(err, ES_EINVAL, 400, "stop", "'stop' must be a string or an array of strings");
    int max = lim->max_stop < 16 ? lim->max_stop : 16;
    if ((int)json_array_size(v) > max)
        return fail(err, ES_EINVAL, 400, "stop", "'stop' holds %zu sequences, at most %d", json_array_size(v), max);
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s))
            return fail(err, ES_EINVAL, 400, "stop", "stop[%zu] must be a string, not %s", i, type_name(s));
        if (json_string_length(s)) r->stop[r->n_stop++] = json_string_value(s);
    }
    return 0;
}

static int get_prompts(json_t *o, es_oai_req *r, es_oai_error *err)
{
    json_t *v = json_object_get(o, "prompt");
    if (!v) return fail(err, ES_EINVAL, 400, "prompt", "'prompt' is required");
    if (json_is_string(v)) {
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return ES_ENOMEM;
        r->prompts[0] = json_string_value(v);
        r->n_prompts = 1;
        return 0;
    }
    if (!json_is_array(v) || !json_array_size(v))
        return fail(err, ES_EINVAL, 400, "prompt", "'prompt' must be a string or a non-empty array of strings");
    r->prompts = calloc(json_array_size(v), sizeof *r->prompts);
    if (!r->prompts) return ES_ENOMEM;
    size_t i;
    json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s))
            return fail(err, ES_EINVAL, 400, "prompt",
                        "prompt[%zu] must be a string (token arrays are not accepted), not %s", i, type_name(s));
        r->prompts[r->n_prompts++] = json_string_value(s);
    }
    return 0;
}

/* A message's text: a string, or an array of {"type":"text","text":...}
 * parts joined.  1 when it is text (or null), 0 when not. */
int es_sv_message_text(json_t *content, es_sv_buf *out)
{
    if (!content || json_is_null(content)) return 1;
    if (json_is_string(content)) return es_sv_buf_add(out, json_string_value(content), json_string_length(content)) == 0;
    if (!json_is_array(content)) return 0;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") || !json_is_string(text)) return 0;
        if (es_sv_buf_add(out, json_string_value(text), json_string_length(text))) return 0;
    }
    return 1;
}

static int get_messages(json_t *o, es_oai_req *r, es_oai_error *err)
{
    json_t *v = json_object_get(o, "messages");
    if (!v) return fail(err, ES_EINVAL, 400, "messages", "'messages' is required");
    if (!json_is_array(v) || !json_array_size(v))
        return fail(err, ES_EINVAL, 400, "messages", "'messages' must be a non-empty array");
    size_t i;
    json_t *m;
    json_array_foreach(v, i, m) {
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) return fail(err, ES_EINVAL, 400, param, "%s must be an object, not %s", param, type_name(m));
        json_t *role = json_object_get(m, "role");
        if (!json_is_string(role))
            return fail(err, ES_EINVAL, 400, param, "%s.role must be a string", param);
        const char *rs = json_string_value(role);
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "developer") &&
            strcmp(rs, "tool"))
            return fail(err, ES_EINVAL, 400, param,
                        "%s.role must be one of system, developer, user, assistant, tool, not '%.40s'", param, rs);
        json_t *content = json_object_get(m, "content");
        if (content && !json_is_null(content) && !json_is_string(content) && !json_is_array(content))
            return fail(err, ES_EINVAL, 400, param, "%s.content must be a string or an array of parts, not %s", param,
                        type_name(content));
        if ((!content || json_is_null(content)) && strcmp(rs, "assistant"))
            return fail(err, ES_EINVAL, 400, param, "%s.content is required", param);
    }
    r->messages = v;
    r->n_prompts = 1;   /* the conversation is one prompt */
    return 0;
}

static int get_options(json_t *o, es_oai_req *r, es_oai_error *err)
{
    json_t *so = json_object_get(o, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return fail(err, ES_EINVAL, 400, "stream_options", "'stream_options' must be an object");
        if (get_bool(so, "include_usage", &r->include_usage, err) ||
            get_bool(so, "continuous_usage_stats", &r->continuous_usage, err))
            return ES_EINVAL;
    }
    json_t *es = json_object_get(o, "earlystop");
    if (es && !json_is_null(es)) {
        if (!json_is_object(es)) return fail(err, ES_EINVAL, 400, "earlystop", "'earlystop' must be an object");
        /* a misspelt key would otherwise run the request silently without it */
        const char *k;
        json_t *v;
        json_object_foreach(es, k, v) {
            if (strcmp(k, "policy") && strcmp(k, "max_em_drop"))
                return fail(err, ES_EINVAL, 400, "earlystop", "'earlystop' has no key '%.64s' (it takes policy, max_em_drop)",
                            k);
        }
        json_t *p = json_object_get(es, "policy");
        if (p && !json_is_null(p)) {
            if (!json_is_string(p) || !json_string_length(p))
                return fail(err, ES_EINVAL, 400, "earlystop.policy", "'earlystop.policy' must be a policy spec string");
            r->es_policy = json_string_value(p);
        }
        if (get_num(es, "max_em_drop", 0, 1, &r->es_max_em_drop, err)) {
            if (err) snprintf(err->param, sizeof err->param, "earlystop.max_em_drop");
            return ES_EINVAL;
        }
    }
    return 0;
}

/* Every field is checked before anything is used: one message per mistake. */
static int parse_fields(json_t *o, es_oai_req *r, const es_oai_limits *lim, es_oai_error *err)
{
    json_t *model = json_object_get(o, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) return fail(err, ES_EINVAL, 400, "model", "'model' must be a string");
        r->model = json_string_value(model);
    }
    int rc = r->kind == ES_OAI_CHAT ? get_messages(o, r, err) : get_prompts(o, r, err);
    if (rc) return rc;
    long long v = 1;
    if (get_int(o, "n", 1, lim->max_n, &v, err)) return ES_EINVAL;
    r->n = (int)v;
    v = -1;
    if (get_int(o, "max_tokens", 1, 1LL << 30, &v, err)) return ES_EINVAL;
    if (get_int(o, "max_completion_tokens", 1, 1LL << 30, &v, err)) return ES_EINVAL;
    r->max_tokens = (int)v;
    if (get_num(o, "temperature", 0, 2, &r->temperature, err) || get_num(o, "top_p", 0, 1, &r->top_p, err))
        return ES_EINVAL;
    json_t *seed = json_object_get(o, "seed");
    if (seed && !json_is_null(seed)) {
        long long sv = 0;
        if (get_int(o, "seed", INT64_MIN, INT64_MAX, &sv, err)) return ES_EINVAL;
        r->has_seed = 1;
        r->seed = sv;
    }
    if (get_stop(o, r, lim, err) || get_bool(o, "stream", &r->stream, err) || get_bool(o, "echo", &r->echo, err) ||
        get_bool(o, "continue_final_message", &r->continue_final, err) || get_options(o, r, err))
        return ES_EINVAL;
    json_t *lp = json_object_get(o, "logprobs");
    if (r->kind == ES_OAI_CHAT) {
        if (get_bool(o, "logprobs", &r->logprobs, err)) return ES_EINVAL;
        v = 0;
        if (get_int(o, "top_logprobs", 0, lim->max_top_logprobs, &v, err)) return ES_EINVAL;
        r->top_logprobs = (int)v;
        if (r->top_logprobs && !r->logprobs)
            return fail(err, ES_EINVAL, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    } else if (lp && !json_is_null(lp)) {
        v = 0;
        if (get_int(o, "logprobs", 0, lim->max_top_logprobs, &v, err)) return ES_EINVAL;
        r->logprobs = 1;
        r->top_logprobs = (int)v;
    }
    if (r->continue_final && r->kind == ES_OAI_CHAT) {
        json_t *last = json_array_get(r->messages, json_array_size(r->messages) - 1);
        if (strcmp(json_string_value(json_object_get(last, "role")), "assistant"))
            return fail(err, ES_EINVAL, 400, "continue_final_message",
                        "'continue_final_message' needs the last message to be the assistant's");
    }
    return 0;
}

int es_oai_parse(int kind, const char *body, size_t len, const es_oai_limits *lim, es_oai_req **out,
                 es_oai_error *err)
{
    *out = NULL;
    es_oai_limits def;
    if (!lim) {
        es_oai_limits_default(&def);
        lim = &def;
    }
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(err, ES_EPARSE, 400, NULL, "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                    je.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, ES_EINVAL, 400, NULL, "the body must be a JSON object");
    }
    es_oai_req *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(root);
        return fail(err, ES_ENOMEM, 500, NULL, "out of memory");
    }
    r->kind = kind;
    r->root = root;
    r->temperature = NAN;
    r->top_p = NAN;
    r->es_max_em_drop = NAN;
    int rc = parse_fields(root, r, lim, err);
    if (rc == ES_ENOMEM) fail(err, rc, 500, NULL, "out of memory");
    if (rc) {
        es_oai_req_free(r);
        return rc;
    }
    *out = r;
    return ES_OK;
}

void es_oai_req_free(es_oai_req *r)
{
    if (!r) return;
    json_decref(r->root);
    free(r->prompts);
    free(r);
}

int es_sv_chat_prompt(const es_oai_req *r, es_sv_buf *out, es_oai_error *err)
{
    size_t n = json_array_size(r->messages);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(r->messages, i);
        if (!es_sv_message_text(json_object_get(m, "content"), out))
            return fail(err, ES_EINVAL, 400, "messages", "messages[%zu].content: only text parts are accepted", i);
        if (!(r->continue_final && i + 1 == n) && es_sv_buf_str(out, "\n")) return ES_ENOMEM;
    }
    return ES_OK;
}
