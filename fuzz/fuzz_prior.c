/*
 * fuzz_prior.c - libFuzzer target for the prior file reader
 * (es_meta_prior_read): arbitrary bytes as a prior file.  Besides "no
 * crash": an error leaves no prior and carries its code; a prior that reads
 * writes back to a file that reads again and writes the same bytes (what
 * the reader accepts, the writer reproduces), and its accessors stay in
 * range.  The input goes through a temporary file because the reader takes
 * a path, as the CLI does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "earlystop_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *write_prior(const es_meta_prior *p, const char *path)
{
    FILE *fp = fopen(path, "w");
    if (!fp) abort();
    if (es_meta_prior_write(p, fp, NULL) != ES_OK) abort();
    fclose(fp);
    fp = fopen(path, "r");
    if (!fp) abort();
    char *buf = malloc(1 << 20);
    if (!buf) abort();
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    char path[64], back[64];
    snprintf(path, sizeof path, "/tmp/fuzz_prior_%d.json", (int)getpid());
    snprintf(back, sizeof back, "/tmp/fuzz_prior_%d.back.json", (int)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) abort();
    fwrite(data, 1, size, fp);
    fclose(fp);
    es_meta_prior *p = NULL;
    es_error err = {0};
    int rc = es_meta_prior_read(path, &p, &err);
    if (rc != ES_OK) {
        if (p || rc > 0 || err.code != rc) abort();
    } else {
        size_t nf = es_meta_prior_n_families(p);
        if (nf == 0 || es_meta_prior_default_family(p) >= nf) abort();
        for (size_t f = 0; f < nf; f++) {
            char spec[512];
            if (es_meta_prior_spec(p, f, 0, spec, sizeof spec, NULL) != ES_OK) abort();
            if (es_meta_prior_grid_size(p, f) < 2) abort();
        }
        char *a = write_prior(p, back);
        es_meta_prior *q = NULL;
        if (es_meta_prior_read(back, &q, &err) != ES_OK) abort();
        char *b = write_prior(q, back);
        if (strcmp(a, b)) abort();
        free(a);
        free(b);
        es_meta_prior_free(q);
        es_meta_prior_free(p);
        unlink(back);
    }
    unlink(path);
    return 0;
}
