/*
 * log.h - one JSON object per line on stderr.
 *
 * Every line is {"time","level","component","msg", ...fields}. Fields are a
 * jansson object the caller builds (e.g. with json_pack); the IS_LOG macro
 * skips evaluating its arguments when the level is filtered out, so building
 * fields for a debug line costs nothing in production.
 *
 * Thread-safe: any thread may log; a line is written with one write(2).
 */
#ifndef IS_LOG_H
#define IS_LOG_H

#include <stdarg.h>
#include <stdio.h>

#include <jansson.h>

typedef enum {
    IS_LOG_ERROR = 3,
    IS_LOG_WARN = 4,
    IS_LOG_INFO = 6,
    IS_LOG_DEBUG = 7,
} is_log_level_t;

extern int is_log_level;

/* Parses "error|warn|info|debug"; returns -1 if unknown. */
int is_log_level_parse(const char *s);

/* Registers a value that must never appear in the log (a secret key, a
 * token, a password): every line has it replaced by "[hidden]", whichever
 * library wrote the text. Values shorter than 4 bytes are ignored (they
 * would hide ordinary words and protect nothing); at most 32 values. Call
 * from main before other threads start: the list is read without a lock. */
void is_log_redact(const char *secret);

/* fprintf for the operator commands' plain-text output, with the secrets
 * registered by is_log_redact replaced by "[hidden]" as in the log: an
 * error may quote a configuration value (librdkafka rejecting
 * kafka.some.password=VALUE). */
void is_log_printf(FILE *fp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void is_log_vprintf(FILE *fp, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* fields (may be NULL) is stolen (decref'ed) by the call. */
void is_log_emit(int level, const char *component, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define IS_LOG(lvl, comp, fields, ...)                                                             \
    do {                                                                                           \
        if ((lvl) <= is_log_level)                                                                 \
            is_log_emit((lvl), (comp), (fields), __VA_ARGS__);                                     \
    } while (0)

#define IS_ERR(comp, fields, ...)   IS_LOG(IS_LOG_ERROR, comp, fields, __VA_ARGS__)
#define IS_WARN(comp, fields, ...)  IS_LOG(IS_LOG_WARN, comp, fields, __VA_ARGS__)
#define IS_INFO(comp, fields, ...)  IS_LOG(IS_LOG_INFO, comp, fields, __VA_ARGS__)
#define IS_DEBUG(comp, fields, ...) IS_LOG(IS_LOG_DEBUG, comp, fields, __VA_ARGS__)

#endif
