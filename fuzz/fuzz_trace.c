/*
 * fuzz_trace.c - libFuzzer target for the trace layer: reader, traceset,
 * stats and writer on arbitrary bytes.  Whatever the bytes, this must not
 * crash, read out of bounds, overflow or leak; errors are fine.
 *
 * The bytes go to a memfd so the reader sees a real file (it wants a path).
 * Each input runs three ways: strict (stop at the first error) on one
 * thread; ES_READ_SKIP_BAD | ES_READ_NO_TEXT (read to the end) on two
 * threads (the parallel read-ahead and its hand-over); and es_traceset_load_opts
 * with a line limit taken from the first byte, so the over-long-line path
 * and the skip report are reached from the same corpus.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "earlystop_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(const char *path, unsigned flags, int threads)
{
    es_trace_reader *r;
    es_error err;
    es_read_opts o;
    es_read_opts_init(&o);
    o.flags = flags;
    o.threads = threads;
    if (es_trace_reader_open_opts(path, &o, &r, &err)) return;
    es_traceset *ts;
    if (es_traceset_new((flags & ES_READ_NO_TEXT) ? 0 : ES_KEEP_TEXT, &ts)) {
        es_trace_reader_free(r);
        return;
    }
    FILE *devnull = fopen("/dev/null", "w");
    es_trace_writer *w = NULL;
    if (devnull) es_trace_writer_open(devnull, es_trace_reader_header(r), &w, &err);
    es_item it;
    while (es_trace_reader_next(r, &it, &err) == ES_OK) {
        es_traceset_add(ts, &it, &err);
        if (w) es_trace_writer_write(w, &it, &err);
    }
    es_stats st;
    es_stats_compute(ts, &st);
    /* walk every view the way a replay does */
    es_item_view v;
    for (size_t i = 0; i < es_traceset_n_items(ts); i++) {
        if (es_traceset_item(ts, i, &v)) abort();
        for (uint32_t s = 0; s < v.n_samples; s++) {
            if (v.answer[s] < 0 || (uint32_t)v.answer[s] >= v.n_answers) abort();
            for (uint32_t p = v.probe_off[s]; p < v.probe_off[s + 1]; p++)
                if (v.probe_answer[p] < 0 || (uint32_t)v.probe_answer[p] >= v.n_answers) abort();
        }
    }
    (void)es_traceset_bytes(ts);
    es_trace_writer_free(w);
    if (devnull) fclose(devnull);
    es_traceset_free(ts);
    es_trace_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_trace", 0);
    if (fd < 0) return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) break;
        off += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    run(path, 0, 1);
    run(path, ES_READ_SKIP_BAD | ES_READ_NO_TEXT, 2);
    es_read_opts o;
    es_read_opts_init(&o);
    o.flags = ES_READ_SKIP_BAD;
    o.max_line = size ? 16 + (uint64_t)data[0] * 4 : 1;
    es_read_report rep;
    es_traceset *ts = NULL;
    es_error err;
    if (es_traceset_load_opts(path, &o, &ts, &rep, &err) == ES_OK) {
        if (rep.n_reasons > ES_READ_REASONS || rep.n_reasons > rep.skipped) abort();
        es_traceset_free(ts);
    }
    close(fd);
    return 0;
}
