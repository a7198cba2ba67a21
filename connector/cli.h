/*
 * cli.h - argument handling the operator commands (replay, status, check)
 * share, so each says the same thing the same way.
 *
 * Each function prints its own "imgsink COMMAND: ..." line on stderr and
 * returns the exit code of bad usage, 2; 0 means go on. Main thread only
 * (getopt's state is global anyway).
 */
#ifndef IS_CLI_H
#define IS_CLI_H

#include <stdio.h>

#include "config.h"

/* -b, --brokers LIST: sets kafka.bootstrap.servers. Applied after -c and
 * -X (main.c reads those first), so it wins over both. */
int is_cli_brokers(is_config_t *cfg, const char *cmd, const char *brokers);

/* The options every operator command shares, for the default branch of
 * its getopt switch: -b BROKERS (is_cli_brokers), -h (usage on stdout, exit
 * 0) and anything getopt rejected (usage on stderr, exit 2). Returns -1 when
 * c was -b and parsing goes on, else the exit code. */
int is_cli_common_opt(is_config_t *cfg, const char *cmd, int c, const char *arg,
                      void (*usage)(FILE *));

/* After getopt: argv[first] and beyond are operands, and the command takes
 * none. Pass optind as first. */
int is_cli_no_operands(const char *cmd, int argc, char **argv, int first);

#endif
