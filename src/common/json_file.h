/*
 * json_file.h - a whole JSON file read with jansson (header only, for the
 * layers that link jansson: io, meta, learn).
 *
 * Why not json_load_file: its errors repeat the path ("x: unable to open x:
 * ..."), call a directory "'[' or '{' expected near end of file", and do not
 * tell a missing file (an I/O error, exit 1) from a malformed one (exit 2).
 * Every file a user hands us (policy, prior, controller state, stopper) says
 * the same things here.
 */
#ifndef ES_COMMON_JSON_FILE_H
#define ES_COMMON_JSON_FILE_H

#include <stdio.h>

#include <jansson.h>

#include "earlystop.h"
#include "open_file.h"

/* *out = the file's JSON (duplicate keys refused: a repeated key would
 * otherwise keep its last value silently) and 0, or *out = NULL and ES_EIO
 * when it cannot be opened or read or is a directory, ES_EPARSE with the line
 * when it is not JSON;
 * `hint` (may be NULL) is added to a parse error, e.g. what the file should
 * be and which command writes it. */
static inline int es_json_read_file(const char *path, const char *hint, json_t **out, es_error *err)
{
    *out = NULL;
    FILE *f;
    int rc = es_open_input(path, "a file", &f, err);
    if (rc) return rc;
    json_error_t je;
    *out = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    int read_failed = ferror(f);
    fclose(f);
    if (*out) return ES_OK;
    if (read_failed) return es_error_set(err, ES_EIO, path, 0, "", "read failed");
    return es_error_set(err, ES_EPARSE, path, je.line > 0 ? je.line : 0, "", "%s%s%s", je.text, hint ? " " : "",
                        hint ? hint : "");
}

#endif
