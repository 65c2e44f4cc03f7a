/*
 * open_file.h - an input file opened for reading (header only, for the
 * layers that read files users name: io, meta, lm).
 *
 * fopen opens a directory without complaint on Linux; the first read then
 * fails with EISDIR, which surfaced as "read failed", "file too short" or a
 * JSON parse error.  Every input says the same two things here instead.
 */
#ifndef ES_COMMON_OPEN_FILE_H
#define ES_COMMON_OPEN_FILE_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "earlystop.h"

/* *fp = path opened "rb" and 0, or *fp = NULL and ES_EIO: "cannot open:
 * <why>" or "is a directory, not <what>" (e.g. "a trace file"). */
static inline int es_open_input(const char *path, const char *what, FILE **fp, es_error *err)
{
    *fp = fopen(path, "rb");
    if (!*fp) {
        int e = errno;
        return es_error_set(err, ES_EIO, path, 0, "", "cannot open: %s", strerror(e));
    }
    struct stat st;
    if (fstat(fileno(*fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(*fp);
        *fp = NULL;
        return es_error_set(err, ES_EIO, path, 0, "", "is a directory, not %s", what);
    }
    return ES_OK;
}

#endif
