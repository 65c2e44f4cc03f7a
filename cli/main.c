/* main.c - `earlystop COMMAND ...`: dispatch to the subcommands. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    cli_fn fn;
    const char *summary;
} commands[] = {
    {"stats", cmd_stats, "summary figures of trace files (EM, maj@k, oracles, tokens)"},
    {"eval", cmd_eval, "replay stopping policies on trace files: tokens vs EM"},
    {"tune", cmd_tune, "tokens-vs-EM fronts of every rule; a policy with a guarantee"},
    {"meta-train", cmd_meta_train, "learn across tasks how stopping thresholds move (a prior)"},
    {"adapt", cmd_adapt, "tune a new task from K of its items, starting from a prior"},
    {"import", cmd_import, "turn other JSON / JSON Lines outputs into trace format v1"},
    {"cues", cmd_cues, "mark paragraph-end probes with their text cues (conclusion, re-check, end)"},
    {"train", cmd_train, "train the built-in reasoning model"},
    {"generate", cmd_generate, "record traces with probes from the built-in model"},
    {"run", cmd_run, "generate live with a stopping policy deciding in the loop"},
    {"simulate", cmd_simulate, "the online controller on a replayed stream of requests with shifts"},
    {"serve", cmd_serve, "serve the built-in model with the OpenAI API"},
    {"proxy", cmd_proxy, "stop reasoning early in front of an OpenAI-compatible engine"},
    {"record", cmd_record, "record traces (samples, probes) from an OpenAI-compatible engine"},
    {"learn", cmd_learn, "train a learned stopper on trace files (leave-one-file-out with --leave-one-file-out)"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: earlystop COMMAND [OPTIONS] [ARGS]\n\n"
                "earlystop %s - decide when a language model has thought enough.\n\n"
                "commands:\n", ES_VERSION_STRING);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp, "\n'earlystop COMMAND --help' describes each command.\n");
}

/* Output that did not reach stdout is a failure, not a success with nothing
 * said (`eval FILE > /dev/full`): flush and close it, and say why. */
static int finish_stdout(int rc)
{
    errno = 0;
    int bad = fflush(stdout) != 0, e = errno;
    if (!bad && ferror(stdout)) bad = 1, e = 0;
    if (fclose(stdout) && !bad) bad = 1, e = errno;
    if (!bad) return rc;
    fprintf(stderr, "earlystop: standard output: write failed: %s\n", e ? strerror(e) : "I/O error");
    return rc ? rc : CLI_FAIL;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("earlystop %s\n", ES_VERSION_STRING);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "earlystop: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}

int main(int argc, char **argv)
{
    return finish_stdout(dispatch(argc, argv));
}
