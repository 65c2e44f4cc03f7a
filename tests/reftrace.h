/*
 * reftrace.h - one shared trace file loaded for a test (texts dropped).
 *
 * Kept apart from refdata.h because it needs the io layer, which not every
 * test links.
 */
#ifndef ES_TESTS_REFTRACE_H
#define ES_TESTS_REFTRACE_H

#include <stdio.h>
#include <unistd.h>

#include "earlystop_io.h"
#include "refdata.h"

/* ../shared/data/traces/NAME.jsonl, or NULL when the file is not there (the
 * caller skips); a file that is there but does not load fails the test. */
static inline es_traceset *es_ref_load_trace(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/traces/%s.jsonl", es_ref_data_dir(), name);
    if (access(path, R_OK)) return NULL;
    es_traceset *ts;
    es_error err = {0};
    if (es_traceset_load(path, ES_READ_NO_TEXT, &ts, NULL, &err)) fail_msg("%s: %s", path, err.msg);
    return ts;
}

#endif
