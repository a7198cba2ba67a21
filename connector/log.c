/*
 * log.c - JSON line logger. See log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int is_log_level = IS_LOG_INFO;

/* Secrets as they appear in a serialized line (JSON-escaped, without the
 * quotes) and as given, for plain text. Written by is_log_redact before
 * threads start, then read-only. */
#define MAX_SECRETS 32
static char *secrets[MAX_SECRETS], *raw_secrets[MAX_SECRETS];
static int nsecrets;

void is_log_redact(const char *secret)
{
    if (!secret || strlen(secret) < 4 || nsecrets == MAX_SECRETS)
        return;
    for (int i = 0; i < nsecrets; i++)
        if (!strcmp(raw_secrets[i], secret))
            return;
    /* json_string refuses invalid UTF-8: is_log_emit replaces such bytes,
     * so a JSON line never holds that secret as is; plain text may. */
    json_t *s = json_string(secret);
    char *esc = s ? json_dumps(s, JSON_ENCODE_ANY) : strdup(secret), *raw = strdup(secret);
    int quoted = s != NULL;
    json_decref(s);
    if (!esc || !raw) {
        free(esc);
        free(raw);
        return;
    }
    if (quoted) {
        size_t n = strlen(esc);
        memmove(esc, esc + 1, n - 2); /* drop the quotes */
        esc[n - 2] = '\0';
    }
    secrets[nsecrets] = esc;
    raw_secrets[nsecrets++] = raw;
}

/* Replaces every one of the nsecrets strings of list in text; returns text
 * or a new string (text freed), or NULL (text freed) when out of memory:
 * never print what should be hidden. */
static char *redact(char *text, char *const *list)
{
    for (int i = 0; i < nsecrets; i++) {
        const char *sec = list[i];
        size_t slen = strlen(sec), tlen = strlen(text), hits = 0;
        for (const char *p = text; (p = strstr(p, sec)); p += slen)
            hits++;
        if (!hits)
            continue;
        char *out = malloc(tlen + hits * sizeof("[hidden]") + 1), *o = out;
        if (!out) {
            free(text);
            return NULL;
        }
        const char *p = text, *q;
        while ((q = strstr(p, sec))) {
            memcpy(o, p, (size_t)(q - p));
            o += q - p;
            memcpy(o, "[hidden]", 8);
            o += 8;
            p = q + slen;
        }
        strcpy(o, p);
        free(text);
        text = out;
    }
    return text;
}

static const char *level_name(int level)
{
    switch (level) {
    case IS_LOG_ERROR:
        return "error";
    case IS_LOG_WARN:
        return "warn";
    case IS_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

int is_log_level_parse(const char *s)
{
    if (!strcmp(s, "error"))
        return IS_LOG_ERROR;
    if (!strcmp(s, "warn"))
        return IS_LOG_WARN;
    if (!strcmp(s, "info"))
        return IS_LOG_INFO;
    if (!strcmp(s, "debug"))
        return IS_LOG_DEBUG;
    return -1;
}

void is_log_emit(int level, const char *component, json_t *fields, const char *fmt, ...)
{
    char msg[2048], ts[96];
    struct timespec now;
    struct tm tm;
    va_list ap;
    json_t *line;
    char *text;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(now.tv_nsec / 1000000));

    line = json_object();
    json_object_set_new(line, "time", json_string(ts));
    json_object_set_new(line, "level", json_string(level_name(level)));
    json_object_set_new(line, "component", json_string(component));
    /* json_string rejects invalid UTF-8 (e.g. bytes from a hostile record);
     * fall back to a lossy copy rather than dropping the line. */
    json_t *m = json_string(msg);
    if (!m) {
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        m = json_string(msg);
    }
    json_object_set_new(line, "msg", m);
    if (fields) {
        json_object_update_missing(line, fields);
        json_decref(fields);
    }
    text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!text)
        return;
    if (!(text = redact(text, secrets)) &&
        !(text = strdup("{\"level\":\"error\",\"msg\":\"log line dropped\"}")))
        return;
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: one write(2) per line */
    ssize_t wr = write(STDERR_FILENO, text, n + 1);
    (void)wr;
    free(text);
}

void is_log_vprintf(FILE *fp, const char *fmt, va_list ap)
{
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0)
        return;
    if ((text = redact(text, raw_secrets)))
        fputs(text, fp);
    else
        fputs("(not shown: out of memory)\n", fp);
    free(text);
}

void is_log_printf(FILE *fp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    is_log_vprintf(fp, fmt, ap);
    va_end(ap);
}
