/*
 * check.h - `imgsink check`: is this configuration ready to run?
 *
 * One line per check, "ok" or "FAIL" with the detail an operator needs:
 * the configuration is valid; Kafka answers; the input topics and the DLQ
 * topic exist with every partition led; the bucket answers; and a lifecycle
 * rule expires the objects imgsink writes (tag retention=7d, under
 * s3.prefix). Nothing is created or changed.
 */
#ifndef IS_CHECK_H
#define IS_CHECK_H

#include <stddef.h>

#include "config.h"

/* argv[0] is "check". Returns the exit code: 0 every check passed, 1 a
 * check failed, 2 the configuration is invalid (or bad usage). */
int is_check_main(is_config_t *cfg, int argc, char **argv);

/* Looks in a bucket lifecycle configuration (the XML of GET ?lifecycle) for
 * an enabled rule that expires every object tagged tag_key=tag_value under
 * prefix, after days days. A rule covers them when its filter has no tag
 * other than that one, no size condition, and a prefix (if any) that
 * prefix starts with. Returns 1 found (detail names the rule), 0 not found
 * (detail says what each rule lacks), -1 the XML does not parse. Pure: no
 * I/O, so it is unit-tested. */
int is_check_lifecycle_xml(const char *xml, size_t len, const char *tag_key, const char *tag_value,
                           const char *prefix, int days, char *detail, size_t detail_size);

#endif
