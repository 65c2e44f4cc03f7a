/* main.c - `earlystop COMMAND ...`: dispatch to the subcommands. */
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
    {"import", cmd_import, "turn other JSON / JSON Lines outputs into trace format v1"},
    {"train", cmd_train, "train the built-in reasoning model"},
    {"generate", cmd_generate, "record traces with probes from the built-in model"},
    {"run", cmd_run, "generate live with a stopping policy deciding in the loop"},
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

int main(int argc, char **argv)
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
