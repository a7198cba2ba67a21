/*
 * processor.h - the three outcomes every processing step returns.
 *
 * OK: done. RETRY: a transient failure (a resource was unavailable); the
 * record is tried again later and its offset does not advance. FAIL: this
 * record can never succeed (bad image, limit exceeded); it goes to the
 * dead-letter topic with the message as its reason.
 */
#ifndef IS_PROCESSOR_H
#define IS_PROCESSOR_H

typedef enum {
    IS_PROC_OK = 0,
    IS_PROC_RETRY = 1,
    IS_PROC_FAIL = 2,
} is_proc_result_t;

#endif
