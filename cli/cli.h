/* cli.h - shared pieces of the earlystop command-line front. */
#ifndef ES_CLI_H
#define ES_CLI_H

#include <stdio.h>
#include "earlystop.h"

/* Exit codes: 0 ok, 1 runtime failure, 2 bad input or usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* One subcommand: `earlystop NAME ...`.  argv[0] is the command name. */
typedef int (*cli_fn)(int argc, char **argv);

int cmd_stats(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* Print "earlystop: <formatted error>" to stderr; returns CLI_USAGE for input
 * errors (parse, format, invalid) and CLI_FAIL otherwise. */
int cli_report(const es_error *err, int code);

/* Print "earlystop CMD: msg" to stderr and return CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* 1 when arg is -h or --help. */
int cli_is_help(const char *arg);

/* Strict number parsing for options: 0 ok, -1 bad. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *s, double *out);

/* Progress line on stderr ("\r<label> done/total"), only when stderr is a tty
 * or force is set; cli_progress_end ends the line. */
void cli_progress(const char *label, size_t done, size_t total);
void cli_progress_end(void);

#endif
