/* cmd_import.c - placeholder until the command lands. */
#include "cli.h"

int cmd_import(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_usage_error("import", "not built yet");
}
