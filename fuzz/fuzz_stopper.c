/*
 * fuzz_stopper.c - libFuzzer target for stopper files (src/io/stopper_json.c)
 * and the learned rule they make: arbitrary JSON through the reader; what
 * it accepts must write back and read again to the same scores, make a
 * policy, and take a stream of events (samples, probes) without a crash
 * or an answer out of range.  Anything refused must come with a message.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "earlystop_io.h"
#include "io/stopper_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_ANSWERS = 6 };

static void drive(es_stopper *m, const uint8_t *data, size_t size)
{
    es_policy *p;
    es_error err;
    if (es_policy_new_stopper("learned:clinch=off", m, &p, &err)) {
        if (!err.msg[0]) abort();
        return;
    }
    es_session *s;
    if (es_session_new(p, &s)) abort();
    static const uint8_t flags[MAX_ANSWERS] = {0, 1, 0, 1, 1, 0};
    es_session_begin_item(s, 8, MAX_ANSWERS);
    es_session_set_answer_flags(s, flags);
    es_session_begin_sample(s);
    uint32_t at = 0;
    for (size_t i = 0; i + 2 < size && i < 300; i += 3) {
        int32_t a = data[i + 1] % MAX_ANSWERS;
        float c = data[i + 2] == 255 ? NAN : data[i + 2] / 255.0f;
        if (data[i] & 1) {
            at += 1 + data[i] % 32;
            if (es_session_reach(s, at) == ES_CONTINUE && es_session_probe(s, at, a, c, c, 0, 3) < 0) abort();
        } else {
            int rc = es_session_end_sample(s, a, at + 1, c, 1);
            if (rc < 0 || rc > ES_STOP) abort();
            if (rc == ES_STOP) break;
            es_session_begin_sample(s);
            at = 0;
        }
    }
    const es_outcome *o = es_session_end_item(s);
    if (o->answer < -1 || o->answer >= MAX_ANSWERS) abort();
    es_session_free(s);
    es_policy_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j) || !es_io_is_stopper(j)) {
        json_decref(j);
        return 0;
    }
    es_stopper *m;
    es_error err = {0};
    char spec[256];
    if (es_io_stopper_from_json(j, "fuzz", &m, spec, sizeof spec, &err)) {
        json_decref(j);
        if (!err.msg[0]) abort();
        return 0;
    }
    json_decref(j);
    /* written and read back: the same scores */
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp || es_stopper_write(m, fp, spec, NULL, &err)) abort();
    fclose(fp);
    json_t *k = json_loadb(buf, len, 0, NULL);
    es_stopper *back;
    if (!k || es_io_stopper_from_json(k, "back", &back, NULL, 0, &err)) abort();
    json_decref(k);
    free(buf);
    double x[64];
    for (uint32_t i = 0; i < es_feature_count(); i++) x[i] = i < size ? (double)data[i] / 17.0 - 3 : NAN;
    for (int level = ES_AT_WITHIN; level <= ES_AT_ACROSS; level++) {
        double a = es_stopper_score(m, level, x), b = es_stopper_score(back, level, x);
        if (memcmp(&a, &b, sizeof a) && !(isnan(a) && isnan(b))) abort();
    }
    es_stopper_free(back);
    drive(m, data, size);
    es_stopper_free(m);
    return 0;
}
