/* error.c - error codes and the es_error context carrier. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "earlystop.h"

const char *es_strerror(int code)
{
    switch (code) {
    case ES_OK: return "ok";
    case ES_ENOMEM: return "out of memory";
    case ES_EINVAL: return "invalid argument";
    case ES_EIO: return "input/output error";
    case ES_EPARSE: return "parse error";
    case ES_EFORMAT: return "format error";
    case ES_ERANGE: return "out of range";
    case ES_ENOTSUP: return "not supported by this input";
    case ES_EOF: return "end of file";
    default: return "unknown error";
    }
}

/* Bounded copy that always terminates; NULL copies as "". */
static void copy_str(char *dst, size_t cap, const char *src)
{
    if (!src) src = "";
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int es_error_set(es_error *err, int code, const char *file, long line,
                 const char *field, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    err->line = line;
    copy_str(err->file, sizeof err->file, file);
    copy_str(err->field, sizeof err->field, field);
    err->msg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* "file:line: field: msg", leaving out the parts that are empty. */
void es_error_format(const es_error *err, char *buf, size_t cap)
{
    if (!buf || cap == 0) return;
    if (!err) { copy_str(buf, cap, ""); return; }
    size_t at = 0;
    int n;
    if (err->file[0]) {
        n = err->line > 0 ? snprintf(buf, cap, "%s:%ld: ", err->file, err->line)
                          : snprintf(buf, cap, "%s: ", err->file);
        at = n < 0 ? 0 : (size_t)n;
    }
    if (at < cap && err->field[0]) {
        n = snprintf(buf + at, cap - at, "%s: ", err->field);
        at += n < 0 ? 0 : (size_t)n;
    }
    if (at < cap)
        snprintf(buf + at, cap - at, "%s", err->msg[0] ? err->msg : es_strerror(err->code));
}

const char *es_version(void) { return ES_VERSION_STRING; }
