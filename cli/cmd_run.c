/* cmd_run.c - placeholder until the command lands. */
#include "cli.h"

int cmd_run(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_usage_error("run", "not built yet");
}
