/*
 * test_golden.c - what the CLI prints stays the same, byte for byte.
 *
 * tests/golden/manifest lists commands (eval, stats, generate, run on every
 * shared file, the demo set and the built-in model); tests/golden/NAME.out
 * holds what each printed when the manifest was last regenerated.  A
 * restructuring that changes a figure fails here.  An intended change:
 * ES_GOLDEN_UPDATE=1 build/tests/test_golden rewrites the files (commit them
 * and say why).  Lines that need the shared data skip without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clirun.h"
#include "refdata.h"

enum { MAX_LINE = 1024 };

/* Copy s into out with $DATA, $DEMO and $TMP replaced. */
static void expand(const char *s, char *out, size_t cap)
{
    const struct { const char *var, *val; } vars[] = {{"$DATA", es_ref_data_dir()}, {"$DEMO", "data"}, {"$TMP", tmpdir}};
    size_t at = 0;
    while (*s && at + 1 < cap) {
        size_t k, n = sizeof vars / sizeof vars[0];
        for (k = 0; k < n; k++)
            if (!strncmp(s, vars[k].var, strlen(vars[k].var))) break;
        if (k < n) {
            at += (size_t)snprintf(out + at, cap - at, "%s", vars[k].val);
            s += strlen(vars[k].var);
        } else {
            out[at++] = *s++;
        }
    }
    out[at < cap ? at : cap - 1] = '\0';
}

/* Replace every `from` in s (which has room: `to` is never longer). */
static void replace_all(char *s, const char *from, const char *to)
{
    size_t fn = strlen(from), tn = strlen(to);
    if (!fn || tn > fn) return;
    for (char *p = strstr(s, from); p; p = strstr(p + tn, from)) {
        memcpy(p, to, tn);
        memmove(p + tn, p + fn, strlen(p + fn) + 1);
    }
}

/* Drop JSON fields that measure the machine, not the method, and name the
 * temporary and data directories as the manifest does. */
static void scrub(char *s)
{
    replace_all(s, tmpdir, "$TMP");
    if (strlen(es_ref_data_dir()) >= 5) replace_all(s, es_ref_data_dir(), "$DATA");
    const char *keys[] = {"\"seconds\":", "\"threads\":"};
    for (size_t k = 0; k < 2; k++) {
        char *p;
        while ((p = strstr(s, keys[k]))) {
            char *e = p + strlen(keys[k]);
            while (*e && *e != ',' && *e != '}') e++;
            if (*e == ',') e++;
            memmove(p, e, strlen(e) + 1);
        }
    }
}

static int compare_or_update(const char *name, const char *got, int update)
{
    char path[MAX_LINE + 32];
    snprintf(path, sizeof path, "tests/golden/%s.out", name);
    if (update) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(got, fp);
        assert_int_equal(fclose(fp), 0);
        return 0;
    }
    char *want = slurp(path);
    int same = !strcmp(want, got);
    if (!same) {
        size_t i = 0;
        while (want[i] && want[i] == got[i]) i++;
        size_t from = i > 80 ? i - 80 : 0;
        print_error("%s differs from %s at byte %zu:\n  want ...%.160s\n  got  ...%.160s\n", name, path, i, want + from,
                    got + from);
    }
    free(want);
    return !same;
}

static void test_golden(void **state)
{
    (void)state;
    if (!bin_present()) skip();
    FILE *fp = fopen("tests/golden/manifest", "r");
    assert_non_null(fp);
    int update = getenv("ES_GOLDEN_UPDATE") && *getenv("ES_GOLDEN_UPDATE") == '1';
    char data_readme[600];
    snprintf(data_readme, sizeof data_readme, "%s/README.md", es_ref_data_dir());
    int have_data = access(data_readme, R_OK) == 0, checked = 0, differ = 0, skipped = 0;
    char line[MAX_LINE], args[2048];
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (line[0] == '#' || !tab) continue;
        *tab = '\0';
        if (strstr(tab + 1, "$DATA") && !have_data) {
            skipped++;
            continue;
        }
        expand(tab + 1, args, sizeof args);
        char *out, *err;
        int rc = run(args, &out, &err);
        if (rc != 0) fail_msg("'%s' exited %d: %s", args, rc, err);
        if (strcmp(line, "@")) {
            scrub(out);
            differ += compare_or_update(line, out, update);
            checked++;
        }
        free(out);
        free(err);
    }
    fclose(fp);
    print_message("golden outputs: %d %s, %d differ%s\n", checked, update ? "rewritten" : "compared", differ,
                  skipped ? " (shared data absent: some lines skipped)" : "");
    if (skipped) print_message("shared data absent (%s): skipping %d golden lines\n", es_ref_data_dir(), skipped);
    assert_int_equal(differ, 0);
}

static int setup(void **state)
{
    (void)state;
    return clirun_setup("golden");
}

static int teardown(void **state)
{
    (void)state;
    return clirun_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
