/*
 * table.h - plain-text tables for the operator commands' output: columns
 * padded to their widest cell, numbers right-aligned, two spaces apart.
 *
 * Threads: a table belongs to the thread that made it.
 */
#ifndef IS_TABLE_H
#define IS_TABLE_H

#include <stddef.h>
#include <stdio.h>

typedef struct is_table is_table_t;

/* headers: ncols column titles; a title starting with '>' is right-aligned
 * (the '>' is not printed). Returns NULL on out of memory. */
is_table_t *is_table_new(size_t ncols, const char *const *headers);

/* Adds a row of ncols ready-made cells (copied; NULL prints as "-").
 * Returns 0 or -1 (out of memory). */
int is_table_add(is_table_t *t, const char *const *cells);

/* Writes the header and the rows, each line indented by indent spaces. */
void is_table_print(const is_table_t *t, FILE *fp, int indent);

void is_table_destroy(is_table_t *t); /* accepts NULL */

#endif
