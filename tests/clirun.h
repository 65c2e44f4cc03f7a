/*
 * clirun.h - running the `earlystop` binary from a cmocka test: a temp dir,
 * $ES_BIN (default build/earlystop), and run() that captures the exit
 * status, stdout and stderr.  Shared by test_cli.c and test_cli_eval.c;
 * header-only like refdata.h.  Include after <cmocka.h>.
 */
#ifndef ES_TEST_CLIRUN_H
#define ES_TEST_CLIRUN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];
static char bin[1024];

/* Pick the binary and make a fresh temp dir named after the test file. */
static inline int clirun_setup(const char *name)
{
    const char *b = getenv("ES_BIN");
    snprintf(bin, sizeof bin, "%s", b && *b ? b : "build/earlystop");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/es_%s_XXXXXX", name);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int clirun_teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A missing binary skips the test with a message rather than failing it. */
static inline int bin_present(void)
{
    if (access(bin, X_OK) == 0) return 1;
    print_message("CLI binary %s absent: set ES_BIN; skipping\n", bin);
    return 0;
}

/* Whole file as a NUL-terminated string ("" when it cannot be read). */
static inline char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return calloc(1, 1);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)(n < 0 ? 0 : n) + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)(n < 0 ? 0 : n), fp);
    buf[got] = '\0';
    fclose(fp);
    return buf;
}

/* Run `$ES_BIN args`; returns the exit status, output in *out / *err
 * (caller frees).  args are pasted into a shell line: keep them simple. */
static inline int run(const char *args, char **out, char **err)
{
    char o[512], e[512], cmd[8192];
    snprintf(o, sizeof o, "%s/out", tmpdir);
    snprintf(e, sizeof e, "%s/err", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s' </dev/null", bin, args, o, e);
    int st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st));
    *out = slurp(o);
    *err = slurp(e);
    return WEXITSTATUS(st);
}

/* Run `$ES_BIN args` with stdout sent to `out_path` (e.g. /dev/full);
 * returns the exit status, stderr in *err (caller frees). */
static inline int run_to(const char *args, const char *out_path, char **err)
{
    char e[512], cmd[8192];
    snprintf(e, sizeof e, "%s/err", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s' </dev/null", bin, args, out_path, e);
    int st = system(cmd);
    assert_true(st != -1 && WIFEXITED(st));
    *err = slurp(e);
    return WEXITSTATUS(st);
}

/* 1 when files a and b hold the same bytes (both readable). */
static inline int same_bytes(const char *a, const char *b)
{
    char *x = slurp(a), *y = slurp(b);
    int same = !strcmp(x, y);
    free(x);
    free(y);
    return same;
}

#endif
