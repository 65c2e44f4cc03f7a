/* test_node.c - the official OpenAI Node SDK (npm package `openai`, pinned
 * in tests/node/package-lock.json) drives `earlystop serve` and `earlystop
 * proxy` end to end: tests/node/e2e.mjs.  The SDK is installed into
 * tests/node/node_modules by `npm ci` on first use.  Skipped, with the
 * reason, when node or npm is absent or the npm registry cannot be reached. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

static int sh(const char *cmd)
{
    int st = system(cmd);
    return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

static void test_openai_node_sdk(void **state)
{
    (void)state;
    const char *bin = getenv("ES_BIN");
    char abs_bin[4096];
    if (!bin || !*bin) bin = "build/earlystop";
    if (!realpath(bin, abs_bin) || access(abs_bin, X_OK)) {
        print_message("CLI binary %s absent: skipping the Node SDK test\n", bin);
        skip();
    }
    if (sh("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1")) {
        print_message("node or npm not installed: skipping the OpenAI Node SDK test (apt-get install nodejs npm)\n");
        skip();
    }
    if (access("tests/node/node_modules/openai/package.json", R_OK) &&
        sh("cd tests/node && npm ci --no-audit --no-fund --loglevel=error >npm-ci.log 2>&1")) {
        print_message("npm ci failed (no registry?): skipping the OpenAI Node SDK test; see tests/node/npm-ci.log\n");
        skip();
    }
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "cd tests/node && ES_BIN='%s' node e2e.mjs", abs_bin);
    assert_int_equal(sh(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_node_sdk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
