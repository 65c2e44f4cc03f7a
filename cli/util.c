/* util.c - helpers shared by the subcommands: errors, numbers, progress. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_report(const es_error *err, int code)
{
    char buf[1024];
    if (err && err->code == code)
        es_error_format(err, buf, sizeof buf);
    else
        snprintf(buf, sizeof buf, "%s", es_strerror(code));
    fprintf(stderr, "earlystop: %s\n", buf);
    switch (code) {
    case ES_EPARSE: case ES_EFORMAT: case ES_EINVAL: case ES_ENOTSUP: case ES_ERANGE:
        return CLI_USAGE;
    default:
        return CLI_FAIL;
    }
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "earlystop %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'earlystop %s --help')\n", cmd);
    return CLI_USAGE;
}

int cli_is_help(const char *arg)
{
    return arg && (!strcmp(arg, "-h") || !strcmp(arg, "--help"));
}

int cli_parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || v != v) return -1;
    *out = v;
    return 0;
}

void cli_progress(const char *label, size_t done, size_t total)
{
    if (!isatty(2)) return;
    if (total)
        fprintf(stderr, "\r%s %zu/%zu (%.0f%%)", label, done, total, 100.0 * done / total);
    else
        fprintf(stderr, "\r%s %zu", label, done);
    fflush(stderr);
}

void cli_progress_end(void)
{
    if (isatty(2)) fputc('\n', stderr);
}
