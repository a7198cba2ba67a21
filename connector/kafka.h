/*
 * kafka.h - librdkafka client configuration shared by the worker, the DLQ
 * producer and `imgsink produce`.
 */
#ifndef IS_KAFKA_H
#define IS_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "config.h"

typedef enum { IS_KAFKA_CONSUMER, IS_KAFKA_PRODUCER } is_kafka_role_t;

/* Builds a librdkafka configuration from the kafka.* keys: consumer-only
 * properties (group.*, auto.offset.reset, ...) are not given to producers so
 * librdkafka does not warn about them. librdkafka's own log lines are routed
 * into imgsink's JSON log with component "rdkafka", and a refused broker
 * certificate is recorded for is_kafka_explain. Returns NULL with
 * "kafka.KEY=VALUE: librdkafka's reason" in errstr on a bad property. */
rd_kafka_conf_t *is_kafka_conf_new(const is_config_t *cfg, is_kafka_role_t role, char *errstr,
                                   size_t errstr_size);

/* Copies librdkafka's error REASON to OUT; when it is a refused broker
 * certificate ("certificate verify failed"), says instead why OpenSSL
 * refused the last one (unknown CA, host name mismatch, expired...):
 * librdkafka's own message blames ssl.ca.location whatever the reason.
 * When the broker refused this client's certificate, or its lack of one
 * (a TLS alert), says so first (is_kafka_explain_client_auth, with
 * whether the configuration has a client certificate). Any thread. */
void is_kafka_explain(const char *reason, char *out, size_t out_size);

/* If REASON reports a TLS alert with which a broker refuses client
 * authentication (ssl.client.auth=required: certificate required, bad
 * certificate, certificate unknown, unknown CA, ...), writes to OUT
 * "client certificate required: ..." (HAVE_CERT 0: none is configured) or
 * "client certificate refused: ..." (HAVE_CERT 1), followed by REASON,
 * and returns 1; else returns 0 and leaves OUT alone. Pure. */
int is_kafka_explain_client_auth(const char *reason, int have_cert, char *out, size_t out_size);

/* 1 when a client error ERR, explained by is_kafka_explain as EXPLAINED,
 * will not go away without an operator (refused credentials or
 * certificates: logged as errors), 0 for the transient rest. */
int is_kafka_needs_operator(int err, const char *explained);

/* Sets one property or fills errstr naming it. */
int is_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                      size_t errstr_size);

#endif
