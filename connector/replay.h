/*
 * replay.h - `imgsink replay`: move a consumer group's committed offsets so
 * the workers process a range of a topic again.
 *
 * Prints the plan first (per partition: committed, new offset, end, records
 * to reprocess), refuses while the group has live members (their next
 * commit would overwrite the move), then commits the new offsets through
 * Kafka's group API and reads them back. Keys are deterministic, so what is
 * reprocessed overwrites its objects with identical bytes.
 */
#ifndef IS_REPLAY_H
#define IS_REPLAY_H

#include "config.h"

/* argv[0] is "replay". Returns the exit code: 0 done (or dry run), 1 the
 * replay could not be done (live members, unknown topic, Kafka down), 2 bad
 * usage. */
int is_replay_main(is_config_t *cfg, int argc, char **argv);

#endif
