/*
 * main.c - the imgsink command line: run, produce, replay, status, check, config,
 * help, version.
 *
 * Configuration is read the same way for every command: defaults, then
 * -c FILE (or IMGSINK_CONFIG), then IMGSINK_* environment variables, then
 * -X key=value options, later wins.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "api.h"
#include "analytics.h"
#include "check.h"
#include "config.h"
#include "envelope.h"
#include "log.h"
#include "produce.h"
#include "replay.h"
#include "s3.h"
#include "status.h"
#include "worker.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "imgsink %s - Kafka image records -> libvips -> S3, offsets committed only after "
            "durable writes\n"
            "\n"
            "usage: imgsink COMMAND [-c FILE] [-X key=value]... [options]\n"
            "\n"
            "commands:\n"
            "  run       consume, process and store (a consumer-group member); stops on\n"
            "            SIGTERM/SIGINT after finishing the record in hand and committing\n"
            "  produce   publish image files as records (imgsink produce --help)\n"
            "  replay    move a group's committed offsets to reprocess records, with a plan;\n"
            "            refuses while the group has live members (imgsink replay --help)\n"
            "  status    a group's committed offsets, end offsets, lag and members\n"
            "            (imgsink status --help)\n"
            "  analytics the events topic as partitioned Avro files in the store\n"
            "            (imgsink analytics --help)\n"
            "  check     validate the configuration, reach Kafka, the topics, the bucket and\n"
            "            its lifecycle rule; one ok/FAIL line each (imgsink check --help)\n"
            "  api       the upload API: presigned uploads, direct posts, status\n"
            "            (imgsink api --help)\n"
            "  config    print the effective configuration, secrets hidden\n"
            "  help config [--markdown]\n"
            "            every configuration key with type, default, bounds, description\n"
            "  version   print the version and library versions\n"
            "\n"
            "options:\n"
            "  -c FILE        key=value configuration file (also IMGSINK_CONFIG)\n"
            "  -X key=value   set one key; kafka.* keys go to librdkafka\n"
            "  -h, --help     this text\n"
            "\n"
            "Environment: IMGSINK_<KEY> sets a key, upper case with '.' as '_'\n"
            "(IMGSINK_S3_SECRET_KEY sets s3.secret.key; IMGSINK_KAFKA_BOOTSTRAP_SERVERS sets\n"
            "kafka.bootstrap.servers).\n"
            "\n"
            "Exit status: 0 clean stop, 1 runtime failure, 2 bad usage or configuration.\n",
            IS_VERSION);
}

/* Whatever a library puts in a log line or an error message, the
 * configured secrets are hidden (log.h). Before any thread starts. */
static void hide_secrets(const is_config_t *cfg)
{
    const char *secrets[32];
    size_t nsecrets = is_config_secrets(cfg, secrets, 32);
    for (size_t i = 0; i < nsecrets; i++)
        is_log_redact(secrets[i]);
}

/* Pulls -c and -X out of argv (anywhere after the command) into cfg and
 * compacts the rest for the command's own parser. Returns -1 on error. */
static int load_config(is_config_t *cfg, int *argc, char **argv)
{
    char errstr[1024];
    const char *file = getenv("IMGSINK_CONFIG");
    int out = 1;
    /* -X values are applied after the file and environment. */
    char **xs = calloc((size_t)*argc, sizeof(char *));
    int nx = 0;

    for (int i = 1; i < *argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "-X")) && i + 1 < *argc) {
            if (argv[i][1] == 'c')
                file = argv[++i];
            else
                xs[nx++] = argv[++i];
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    argv[out] = NULL;

    if (file && is_config_load_file(cfg, file, errstr, sizeof(errstr)))
        goto fail;
    if (is_config_load_env(cfg, errstr, sizeof(errstr)))
        goto fail;
    for (int i = 0; i < nx; i++) {
        char *eq = strchr(xs[i], '=');
        if (!eq) {
            snprintf(errstr, sizeof(errstr), "-X %s: expected key=value", xs[i]);
            goto fail;
        }
        *eq = '\0';
        int bad = is_config_set(cfg, xs[i], eq + 1, errstr, sizeof(errstr));
        *eq = '=';
        if (bad)
            goto fail;
    }
    free(xs);
    hide_secrets(cfg);
    return 0;
fail:
    hide_secrets(cfg); /* the ones read so far */
    is_log_printf(stderr, "imgsink: configuration error: %s\n", errstr);
    free(xs);
    return -1;
}

static int cmd_run(is_config_t *cfg, const char *argv0, int argc, char **argv)
{
    char errstr[1024];
    struct sigaction sa;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        fprintf(stderr, "imgsink run: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    if (is_config_validate(cfg, errstr, sizeof(errstr))) {
        is_log_printf(stderr, "imgsink: configuration error: %s\n", errstr);
        return 2;
    }
    int lvl = is_log_level_parse(cfg->log_level);
    is_log_level = lvl < 0 ? IS_LOG_INFO : lvl;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll and sleeps return early */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (is_worker_run(cfg, argv0, &stop_requested, errstr, sizeof(errstr))) {
        IS_ERR("main", NULL, "%s", errstr);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char errstr[1024];
    int rc = 2;

#ifdef __GLIBC__
    /* glibc's malloc (the default build; Makefile MALLOC): two arenas
     * rather than eight per core bound what the job threads' image buffers
     * fragment, at no CPU cost measured (bench/notes.md). Set before any
     * thread starts; a MALLOC_ARENA_MAX from the environment wins. Without
     * effect when jemalloc is linked (MALLOC=jemalloc). */
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, 2);
#endif
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("imgsink %s (librdkafka %s)\n", IS_VERSION, rd_kafka_version_str());
        return 0;
    }
    if (!strcmp(argv[1], "help")) {
        if (argc >= 3 && !strcmp(argv[2], "config")) {
            is_config_print_help(stdout, argc >= 4 && !strcmp(argv[3], "--markdown"));
            return 0;
        }
        usage(stdout);
        return 0;
    }

    const char *cmd = argv[1];
    is_config_t *cfg = is_config_new();
    /* argv+1: the command name plays argv[0] for the subcommand. */
    int sargc = argc - 1;
    char **sargv = argv + 1;
    if (load_config(cfg, &sargc, sargv))
        goto done;
    int lvl = is_log_level_parse(cfg->log_level);
    is_log_level = lvl < 0 ? IS_LOG_INFO : lvl;

    if (is_envelope_global_init(errstr, sizeof(errstr)) ||
        is_s3_global_init(errstr, sizeof(errstr))) {
        fprintf(stderr, "imgsink: start-up failed: %s\n", errstr);
        rc = 1;
        goto done;
    }
    if (!strcmp(cmd, "run")) {
        rc = cmd_run(cfg, argv[0], sargc, sargv);
    } else if (!strcmp(cmd, "produce")) {
        rc = is_produce_main(cfg, sargc, sargv);
    } else if (!strcmp(cmd, "replay")) {
        rc = is_replay_main(cfg, sargc, sargv);
    } else if (!strcmp(cmd, "status")) {
        rc = is_status_main(cfg, sargc, sargv);
    } else if (!strcmp(cmd, "check")) {
        rc = is_check_main(cfg, sargc, sargv);
    } else if (!strcmp(cmd, "api")) {
        rc = is_api_main(cfg, sargc, sargv);
    } else if (!strcmp(cmd, "analytics")) {
        rc = is_analytics_main(cfg, sargc, sargv);
    } else if (!strcmp(cmd, "config")) {
        is_config_dump(cfg, stdout);
        rc = 0;
    } else {
        fprintf(stderr, "imgsink: unknown command '%s' (try imgsink --help)\n", cmd);
        rc = 2;
    }
    is_s3_global_cleanup();
    is_envelope_global_term();
done:
    is_config_destroy(cfg);
    return rc;
}
