/* serve_cli.h - what serve, proxy and record share on the command line: the
 * listening options, the stop pipe for SIGINT/SIGTERM, the ready line. */
#ifndef ES_SERVE_CLI_H
#define ES_SERVE_CLI_H

#include "cli.h"
#include "earlystop_serve.h"

/* If argv[*i] is a listening option (--host, --port, --api-key, --max-body,
 * --max-header, --header-timeout, --body-timeout, --idle-timeout,
 * --max-conns, --quiet), consume it and return 1; 0 when it is not one; -1
 * after printing the usage error of a bad value. */
int serve_listen_opt(const char *cmd, int argc, char **argv, int *i, es_listen_opts *o);
/* The listening options' --help lines (port: the command's default). */
void serve_listen_help(FILE *fp, int port);

/* A pipe whose read end becomes readable on SIGINT or SIGTERM (and on
 * serve_stop_now); the fd for es_listen_opts.stop_fd, -1 on failure. */
int serve_stop_pipe(void);
/* Prints "earlystop CMD: listening on http://HOST:PORT" to stdout. */
void serve_print_ready(void *ctx, const char *host, int port);
/* Reads a key from $EARLYSTOP_API_KEY when --api-key was not given; warns on
 * stderr when CMD would listen beyond loopback without a key. */
void serve_key_from_env(const char *cmd, es_listen_opts *o);

#endif
