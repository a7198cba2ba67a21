/*
 * admin.h - Kafka group and offset queries for the operator commands
 * (`imgsink replay`, `imgsink status`, `imgsink check`).
 *
 * Everything goes through Kafka's own APIs via librdkafka's Admin API and
 * ListOffsets: DescribeConsumerGroups (state, members, assignments),
 * ListConsumerGroupOffsets (OffsetFetch), AlterConsumerGroupOffsets
 * (OffsetCommit outside the group's generation), and offsets-for-times
 * (ListOffsets, which also names the log start and end). Nothing here joins
 * the group, so querying a group never triggers a rebalance.
 *
 * The client never creates topics: allow.auto.create.topics=false, and
 * topic existence is read from a full metadata listing.
 *
 * Threads: an is_admin_t belongs to the thread that made it (main). Each
 * call blocks for at most IS_ADMIN_TIMEOUT_MS.
 */
#ifndef IS_ADMIN_H
#define IS_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

#define IS_ADMIN_TIMEOUT_MS 10000

typedef struct is_admin is_admin_t;

typedef struct is_admin_member {
    char *member_id, *client_id, *host;
    char *instance_id;                           /* group.instance.id, NULL if dynamic */
    rd_kafka_topic_partition_list_t *assignment; /* never NULL once described */
} is_admin_member_t;

typedef struct is_admin_group {
    char *group_id;
    rd_kafka_consumer_group_state_t state;
    char *assignor; /* "" when none */
    int simple;     /* no protocol: only ever committed to, never joined */
    int coordinator_id;
    char *coordinator_host;
    int coordinator_port;
    is_admin_member_t *members;
    size_t nmembers;
} is_admin_group_t;

/* One partition as the commands report it. Offsets are -1 when unknown
 * (committed: the group never committed this partition). */
typedef struct is_admin_part {
    char *topic;
    int32_t partition;
    int64_t committed, log_start, end;
    const is_admin_member_t *owner; /* member assigned this partition, or NULL */
} is_admin_part_t;

/* Creates the client from the kafka.* keys (bootstrap servers, security).
 * client_id names the tool in the broker's view ("imgsink-replay").
 * librdkafka's own log lines go to the JSON log only at log.level=debug;
 * the last connection error is kept for is_admin_last_error. */
is_admin_t *is_admin_new(const is_config_t *cfg, const char *client_id, char *errstr,
                         size_t errstr_size);
void is_admin_destroy(is_admin_t *ad); /* accepts NULL */

/* The last error or warning librdkafka logged ("Connect to ipv4#... failed:
 * Connection refused"), "" if none: the reason behind a timeout. */
void is_admin_last_error(is_admin_t *ad, char *buf, size_t size);

/* Partition count of each topic in topics[]: counts[i] = -1 when the topic
 * does not exist. leaderless[i] (array may be NULL) gets the number of its
 * partitions without a leader (unavailable). Fails (-1) only when the
 * cluster cannot be reached; *nbrokers gets the broker count (may be NULL). */
int is_admin_topics(is_admin_t *ad, const char *const *topics, size_t ntopics, int *counts,
                    int *leaderless, int *nbrokers, char *errstr, size_t errstr_size);

/* Describes one group. A group Kafka does not know is described as state
 * Dead with no members (Kafka answers so rather than with an error). */
int is_admin_describe_group(is_admin_t *ad, const char *group, is_admin_group_t *out, char *errstr,
                            size_t errstr_size);
void is_admin_group_clear(is_admin_group_t *g); /* accepts a zeroed g */

/* The member a partition is assigned to, or NULL. */
const is_admin_member_t *is_admin_group_owner(const is_admin_group_t *g, const char *topic,
                                              int32_t partition);

/* Committed offsets. parts NULL: every partition the group committed (the
 * list may be empty); otherwise those partitions, offset -1 where none.
 * *outp is the caller's (rd_kafka_topic_partition_list_destroy). */
int is_admin_committed(is_admin_t *ad, const char *group,
                       const rd_kafka_topic_partition_list_t *parts,
                       rd_kafka_topic_partition_list_t **outp, char *errstr, size_t errstr_size);

/* ListOffsets for every element of parts, in place: on input offset is a
 * timestamp in ms, or RD_KAFKA_OFFSET_BEGINNING (-2) for the log start or
 * RD_KAFKA_OFFSET_END (-1) for the end; on output the offset, with -1 where
 * no record has a timestamp >= the one asked. Per-partition errors fail
 * the call and are named in errstr. */
int is_admin_list_offsets(is_admin_t *ad, rd_kafka_topic_partition_list_t *parts, char *errstr,
                          size_t errstr_size);

/* Commits parts' offsets for the group without joining it. Kafka refuses
 * this while the group has members (UNKNOWN_MEMBER_ID), so a worker that
 * joined since the caller looked is never overridden. */
int is_admin_alter(is_admin_t *ad, const char *group, const rd_kafka_topic_partition_list_t *parts,
                   char *errstr, size_t errstr_size);

/* Fills rows for every partition of the given topics: committed offset,
 * log start, end and owner. *rowsp is the caller's (is_admin_parts_free).
 * A topic that does not exist fails with "unknown topic 'T'". */
int is_admin_collect(is_admin_t *ad, const char *group, const is_admin_group_t *g,
                     const char *const *topics, size_t ntopics, is_admin_part_t **rowsp,
                     size_t *nrowsp, char *errstr, size_t errstr_size);
void is_admin_parts_free(is_admin_part_t *rows, size_t nrows);

/* "Stable", "Empty", "Dead", "PreparingRebalance", ... */
const char *is_admin_state_name(rd_kafka_consumer_group_state_t state);

/* Parses an ISO 8601 time: "2026-01-05", "2026-01-05T10:00Z",
 * "2026-01-05T10:00:00.250+02:00". A date alone means 00:00 UTC; a time of
 * day needs "Z" or an offset (a zone-less time is ambiguous across pods).
 * Returns milliseconds since the epoch, or -1 with errstr. */
int is_admin_parse_time(const char *s, int64_t *ms, char *errstr, size_t errstr_size);

#endif
