/*
 * status.h - `imgsink status`: where a consumer group stands.
 *
 * Per partition: committed offset, log end offset, lag and the member it is
 * assigned to; the group's state and members with their assignments. A
 * table for people, --json for scripts, --watch to follow a catch-up (a
 * progress line with records committed, rate and ETA to lag 0).
 */
#ifndef IS_STATUS_H
#define IS_STATUS_H

#include "config.h"

/* argv[0] is "status". Returns the exit code: 0 shown, 1 Kafka or the group
 * could not be read, 2 bad usage. */
int is_status_main(is_config_t *cfg, int argc, char **argv);

#endif
