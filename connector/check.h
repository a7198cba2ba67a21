/*
 * check.h - `imgsink check`: is this configuration ready to run?
 *
 * One line per check, "ok" or "FAIL" with the detail an operator needs:
 * the configuration is valid; Kafka answers; the input topics and the DLQ
 * topic exist with every partition led; the bucket answers; and lifecycle
 * rules expire the objects imgsink writes (tag retention=Nd for each class N
 * of retention.classes, under s3.prefix), their noncurrent versions, and
 * expired delete markers; the identity may PUT under s3.prefix with the
 * tags and s3.sse (is_check_store_write) and GET under the claim-check
 * prefixes. Nothing is created or changed.
 */
#ifndef IS_CHECK_H
#define IS_CHECK_H

#include <stddef.h>

#include "config.h"
#include "s3.h"

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

/* Whether an enabled rule without a tag filter, whose prefix covers
 * raw_prefix, expires objects after some days: the API path's uploads are
 * untagged and must not stay forever. 1 found, 0 not (detail says which
 * rule or what is missing), -1 the XML does not parse. Pure. Checked by
 * `imgsink check` when api.keys.file is set or input.format=s3-event. */
int is_check_lifecycle_raw(const char *xml, size_t len, const char *raw_prefix, char *detail,
                           size_t detail_size);

/* Called once per line of is_check_lifecycle_classes: ok, and the detail. */
typedef void (*is_check_emit_t)(void *ctx, int ok, const char *detail);

/* Checks a bucket lifecycle configuration against retention.classes: for
 * each class N (days[i]), objects tagged retention=Nd under prefix expire
 * after N days (as is_check_lifecycle_xml) and their noncurrent versions
 * within N days of becoming noncurrent (NoncurrentVersionExpiration, no
 * NewerNoncurrentVersions); and a rule without a tag filter removes expired
 * object delete markers under prefix (ExpiredObjectDeleteMarker: a delete
 * marker has no tags, so a tag-filtered rule never reaches it). Calls emit
 * once per class, in order ("retention=7d: ..."), then once for the delete
 * markers ("delete markers: ..."). Returns how many of those failed, or -1
 * (emit not called) if the XML is not a lifecycle configuration. Pure. */
int is_check_lifecycle_classes(const char *xml, size_t len, const char *prefix, const int *days,
                               int ndays, is_check_emit_t emit, void *ctx);

/* The start-up check of `imgsink run`, with the worker's client s3 (its
 * configured bucket): logs one line per class and for delete markers.
 * Returns -1 with errstr when the store answers that the rules are missing
 * (or the bucket is), so the worker does not write objects nothing would
 * expire; 0 when they are there, or when the store cannot tell now (access
 * denied to the lifecycle configuration, unreachable: logged as warnings). */
int is_check_lifecycle_startup(const is_config_t *cfg, is_s3_t *s3, char *errstr,
                               size_t errstr_size);

/* Whether the worker may write under s3.prefix with its tags and s3.sse,
 * without writing: is_s3_probe_put with the tags of the first retention
 * class, and without them when that is refused, to tell a missing
 * s3:PutObjectTagging from a missing s3:PutObject. 0 allowed (detail says
 * so, or names the probe object a store that ignores checksums kept); -1
 * refused, detail naming the permission, KMS key or policy to fix; 1 the
 * store could not say (unreachable). Both `imgsink check` and the start-up
 * check of `imgsink run` use it. */
int is_check_store_write(const is_config_t *cfg, is_s3_t *s3, char *detail, size_t detail_size);

#endif
