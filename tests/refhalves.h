/*
 * refhalves.h - shared trace files pooled as calibration data, split by item
 * parity (even items build and order the candidates, odd ones test them:
 * opt_mask), with one file's even or odd items as data of their own, so a
 * test can replay a point on one file's part and recompute what the tuner
 * measured there.  For test_tune.c and test_learn.c.
 */
#ifndef ES_TESTS_REFHALVES_H
#define ES_TESTS_REFHALVES_H

#include <stdint.h>
#include <stdlib.h>

#include "earlystop_tune.h"
#include "reftrace.h"

enum { ES_REF_HALVES_MAX = 4 };

typedef struct es_ref_halves {
    size_t n_files;
    es_traceset *ts[ES_REF_HALVES_MAX];
    es_tune_data *cal;                  /* every item of every file */
    es_tune_data *part[ES_REF_HALVES_MAX]; /* file f's even (odd = 0) or odd items */
    uint8_t *mask;                      /* [cal items] 1 for an even item */
} es_ref_halves;

static inline void es_ref_halves_free(es_ref_halves *s)
{
    for (size_t f = 0; f < s->n_files; f++) {
        es_tune_data_free(s->part[f]);
        es_traceset_free(s->ts[f]);
    }
    es_tune_data_free(s->cal);
    free(s->mask);
    memset(s, 0, sizeof *s);
}

/* Load the files (names as es_ref_load_trace takes them; the test skips
 * when one is absent), and o: the tuner's defaults, one order (file order:
 * every p-value an exact binomial one), 2 threads, the parity split. */
static inline void es_ref_halves_load(es_ref_halves *s, const char *const *files, size_t n, int odd, es_tune_opts *o)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(es_tune_data_new(&s->cal), ES_OK);
    for (size_t f = 0; f < n && f < ES_REF_HALVES_MAX; f++) {
        if (!(s->ts[f] = es_ref_load_trace(files[f]))) {
            es_ref_halves_free(s);
            print_message("shared data absent: skipping\n");
            skip();
        }
        s->n_files = f + 1;
        assert_int_equal(es_tune_data_add(s->cal, s->ts[f], files[f]), ES_OK);
        size_t m = es_traceset_n_items(s->ts[f]), k = 0;
        uint32_t *idx = malloc((m / 2 + 1) * sizeof *idx);
        for (size_t i = odd ? 1 : 0; i < m; i += 2) idx[k++] = (uint32_t)i;
        assert_int_equal(es_tune_data_new(&s->part[f]), ES_OK);
        assert_int_equal(es_tune_data_add_items(s->part[f], s->ts[f], files[f], idx, k), ES_OK);
        free(idx);
    }
    size_t items = es_tune_data_n_items(s->cal);
    s->mask = malloc(items + 1);
    for (size_t i = 0; i < items; i++) {
        uint32_t idx;
        es_tune_data_item(s->cal, i, NULL, NULL, &idx);
        s->mask[i] = idx % 2 == 0;
    }
    es_tune_opts_init(o);
    o->shuffles = 0;
    o->threads = 2;
    o->opt_mask = s->mask;
}

#endif
