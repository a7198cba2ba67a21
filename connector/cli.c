/*
 * cli.c - shared argument handling of the operator commands. See cli.h.
 */
#include "cli.h"

#include <stdio.h>

int is_cli_brokers(is_config_t *cfg, const char *cmd, const char *brokers)
{
    char errstr[512];
    if (is_config_set(cfg, "kafka.bootstrap.servers", brokers, errstr, sizeof(errstr))) {
        fprintf(stderr, "imgsink %s: %s\n", cmd, errstr);
        return 2;
    }
    return 0;
}

int is_cli_no_operands(const char *cmd, int argc, char **argv, int first)
{
    if (first < argc) {
        fprintf(stderr, "imgsink %s: unexpected argument '%s'\n", cmd, argv[first]);
        return 2;
    }
    return 0;
}

int is_cli_common_opt(is_config_t *cfg, const char *cmd, int c, const char *arg,
                      void (*usage)(FILE *))
{
    switch (c) {
    case 'b':
        return is_cli_brokers(cfg, cmd, arg) ? 2 : -1;
    case 'h':
        usage(stdout);
        return 0;
    default:
        usage(stderr);
        return 2;
    }
}
