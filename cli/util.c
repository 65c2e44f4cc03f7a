/* util.c - helpers shared by the subcommands: errors, numbers, progress. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "earlystop_io.h"

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

int cli_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4096 ? 4096 : (int)n;
}

int cli_parse_threads(const char *cmd, const char *value, int *out)
{
    long n;
    if (cli_parse_long(value, 0, LONG_MAX, &n))
        return cli_usage_error(cmd, "--threads: '%s' is not a whole number >= 0 (0 = one per core)",
                               value ? value : "");
    int cores = cli_cores();
    if (n > cores) {
        fprintf(stderr, "earlystop %s: --threads %ld: using %d, the cores of this machine\n", cmd, n, cores);
        n = cores;
    }
    *out = n == 0 ? cores : (int)n;
    return 0;
}

int cli_parse_size(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10;
    else if (*end == 'M' || *end == 'm') shift = 20;
    else if (*end == 'G' || *end == 'g') shift = 30;
    if (shift) end++;
    if (*end == 'i' && shift) end++;       /* KiB, MiB, GiB */
    if ((*end == 'B' || *end == 'b') && shift) end++;
    if (*end || v > (UINT64_MAX >> shift)) return -1;
    uint64_t x = (uint64_t)v << shift;
    if (x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

void cli_report_skips(const char *cmd, const char *path, const es_read_report *rep)
{
    if (!rep->skipped) return;
    fprintf(stderr, "earlystop %s: %s: skipped %zu bad item(s)%s\n", cmd, path, rep->skipped,
            rep->skipped > rep->n_reasons ? "; the first:" : ":");
    for (size_t i = 0; i < rep->n_reasons; i++) {
        char buf[1024];
        es_error_format(&rep->reasons[i], buf, sizeof buf);
        fprintf(stderr, "  %s\n", buf);
    }
}

void cli_csv_field(FILE *fp, const char *v)
{
    fputc('"', fp);
    for (; *v; v++) {
        if (*v == '"') fputc('"', fp);
        fputc(*v, fp);
    }
    fputc('"', fp);
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

void cli_print_rules(FILE *fp)
{
    fprintf(fp, "policies (SPEC, or @file.json; combine a within- and an across-sample rule\n"
                "with '+', e.g. dynasor:k=3+ac-beta); the defaults shown:\n");
    for (uint32_t i = 0; i < es_rule_count(); i++) {
        es_rule_info r;
        es_rule_get(i, &r);
        char spec[160];
        size_t at = (size_t)snprintf(spec, sizeof spec, "%s", r.name);
        for (uint32_t k = 0; k < r.n_params && at < sizeof spec; k++) {
            es_param_info p;
            es_rule_param(i, k, &p);
            char val[48];
            if (p.choices) snprintf(val, sizeof val, "%s", p.choices);
            else if (p.word && p.value == p.word_value) snprintf(val, sizeof val, "%s", p.word);
            else snprintf(val, sizeof val, "%g", p.value);
            at += (size_t)snprintf(spec + at, sizeof spec - at, "%s%s=%s", k ? "," : ":", p.key, val);
        }
        const char *lv = r.within && r.across ? "both" : r.within ? "within" : "across";
        if (strlen(spec) > 44) fprintf(fp, "  %s\n  %-44s %s (%s)\n", spec, "", r.doc, lv);
        else fprintf(fp, "  %-44s %s (%s)\n", spec, r.doc, lv);
    }
}

const char *cli_base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int cli_same_file(const char *a, const char *b)
{
    struct stat x, y;
    return !strcmp(a, b) || (!stat(a, &x) && !stat(b, &y) && x.st_dev == y.st_dev && x.st_ino == y.st_ino);
}
