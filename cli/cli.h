/* cli.h - shared pieces of the earlystop command-line front. */
#ifndef ES_CLI_H
#define ES_CLI_H

#include <stdint.h>
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
int cmd_tune(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_meta_train(int argc, char **argv);
int cmd_adapt(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_proxy(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_learn(int argc, char **argv);
int cmd_cues(int argc, char **argv);

/* Print "earlystop: <formatted error>" to stderr; returns CLI_USAGE for input
 * errors (parse, format, invalid) and CLI_FAIL otherwise. */
int cli_report(const es_error *err, int code);

/* A path's file name, without its directory. */
const char *cli_base_name(const char *path);
/* 1 when two paths name one file: the same name, or the same device and inode. */
int cli_same_file(const char *a, const char *b);

/* Print "earlystop CMD: msg" to stderr and return CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The rules a policy spec can name, with their defaults (from the core's
 * catalogue, es_rule_get). */
void cli_print_rules(FILE *fp);

/* 1 when arg is -h or --help. */
int cli_is_help(const char *arg);

/* Strict number parsing for options: 0 ok, -1 bad. */
int cli_parse_long(const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *s, double *out);

/* --threads N for any command: a whole number >= 0 (0 = one per online
 * core), capped at the online cores (more threads than cores only slow a
 * run down, and thousands of threads exhaust memory); a note on stderr says
 * so when it caps.  0 ok; else a usage error is printed and CLI_USAGE
 * returned. */
int cli_parse_threads(const char *cmd, const char *value, int *out);
/* Online cores, at least 1. */
int cli_cores(void);

/* A size in bytes with an optional K, M or G suffix (powers of 1024), in
 * [lo, hi]: 0 ok, -1 bad. */
int cli_parse_size(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* --skip-bad reporting shared by stats and eval: "CMD: FILE: skipped N bad
 * item(s)", then the first reasons (file:line: field: message). */
struct es_read_report;
void cli_report_skips(const char *cmd, const char *path, const struct es_read_report *rep);

/* A CSV field, always quoted (RFC 4180): canonical specs hold commas. */
void cli_csv_field(FILE *fp, const char *v);

/* Progress line on stderr ("\r<label> done/total"), only when stderr is a tty
 * or force is set; cli_progress_end ends the line. */
void cli_progress(const char *label, size_t done, size_t total);
void cli_progress_end(void);

#endif
