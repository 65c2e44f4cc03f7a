/*
 * fuzz_controller.c - libFuzzer target for the controller's saved state
 * (es_controller_load, src/io/controller_json.c and src/core/ctl_state.c):
 * the input bytes are a state file, loaded into a controller over AC-beta's
 * default candidates; whatever loads must then serve tickets and learn from
 * requests (an audited and a plain one) without a crash, a sanitizer report
 * or a position outside the candidates.  Errors are expected.
 *
 * Built by `make fuzz` (scripts/fuzz.sh) with the core, replay and io layers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "earlystop_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_request(es_controller *c, es_policy *p, uint64_t id)
{
    es_controller_ticket t;
    es_controller_begin(c, id, &t);
    if (t.candidate >= es_controller_n_candidates(c)) abort();
    if (es_controller_apply(c, &t, p, NULL)) return;
    es_session *s;
    if (es_session_new(p, &s)) return;
    int32_t ans[12], got[12];
    uint32_t tok[12], gt[12], m = 0;
    for (int i = 0; i < 12; i++) ans[i] = 1 + (int32_t)((id + (uint64_t)i) % 3 == 0), tok[i] = 10 + (uint32_t)i;
    es_session_begin_item(s, 12, 3);
    while (m < 12) {
        int v = es_session_sample(s, ans[m], tok[m], 0);
        es_session_last_sample(s, &got[m], &gt[m]);
        m++;
        if (v == ES_STOP) break;
    }
    es_session_end_item(s);
    es_controller_request r = {&t, m, got, gt, NULL, NULL, 12, 3};
    es_controller_observe(c, &r, NULL, NULL);
    es_session_free(s);
    double x = es_controller_position(c);
    if (!(x >= 0 && x <= es_controller_n_candidates(c) - 1)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/fuzz_controller_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    es_policy *p = NULL;
    es_controller *c = NULL;
    es_controller_opts o;
    es_controller_opts_init(&o, ES_TARGET_EM_LOSS, 0.01);
    if (es_policy_new("ac-beta:clinch=on", &p, NULL) == ES_OK && es_controller_new(p, &o, &c, NULL) == ES_OK) {
        es_error err;
        if (es_controller_load(c, path, &err) == ES_OK)
            for (uint64_t id = 0; id < 4; id++) one_request(c, p, id * 7);
    }
    es_controller_free(c);
    es_policy_free(p);
    unlink(path);
    return 0;
}
