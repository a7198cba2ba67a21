/*
 * table.c - plain-text tables. See table.h.
 */
#include "table.h"

#include <stdlib.h>
#include <string.h>

struct is_table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows + 1 rows of ncols cells; row 0 is the header */
    int *right;   /* per column: right-aligned */
};

is_table_t *is_table_new(size_t ncols, const char *const *headers)
{
    is_table_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->right = calloc(ncols, sizeof(int))) ||
        !(t->cells = calloc(ncols, sizeof(char *)))) {
        is_table_destroy(t);
        return NULL;
    }
    t->ncols = ncols;
    t->cap = 1;
    for (size_t c = 0; c < ncols; c++) {
        t->right[c] = headers[c][0] == '>';
        if (!(t->cells[c] = strdup(headers[c] + t->right[c]))) {
            is_table_destroy(t);
            return NULL;
        }
    }
    return t;
}

int is_table_add(is_table_t *t, const char *const *cells)
{
    if (t->nrows + 2 > t->cap) {
        size_t cap = t->cap * 2 + 2;
        char **n = realloc(t->cells, cap * t->ncols * sizeof(char *));
        if (!n)
            return -1;
        t->cells = n;
        t->cap = cap;
    }
    char **row = t->cells + (t->nrows + 1) * t->ncols;
    for (size_t c = 0; c < t->ncols; c++) {
        if (!(row[c] = strdup(cells[c] ? cells[c] : "-"))) {
            while (c-- > 0)
                free(row[c]);
            return -1;
        }
    }
    t->nrows++;
    return 0;
}

void is_table_print(const is_table_t *t, FILE *fp, int indent)
{
    size_t *w = calloc(t->ncols, sizeof(size_t));
    if (!w)
        return;
    for (size_t r = 0; r <= t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t n = strlen(t->cells[r * t->ncols + c]);
            w[c] = n > w[c] ? n : w[c];
        }
    for (size_t r = 0; r <= t->nrows; r++) {
        char *const *row = t->cells + r * t->ncols;
        size_t last = t->ncols - 1; /* no trailing blanks: stop at the last cell shown */
        while (last > 0 && !t->right[last] && !row[last][0])
            last--;
        fprintf(fp, "%*s", indent, "");
        for (size_t c = 0; c <= last; c++) {
            const char *sep = c ? "  " : "";
            if (t->right[c])
                fprintf(fp, "%s%*s", sep, (int)w[c], row[c]);
            else if (c == last)
                fprintf(fp, "%s%s", sep, row[c]);
            else
                fprintf(fp, "%s%-*s", sep, (int)w[c], row[c]);
        }
        fputc('\n', fp);
    }
    free(w);
}

void is_table_destroy(is_table_t *t)
{
    if (!t)
        return;
    if (t->cells)
        for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
            free(t->cells[i]);
    free(t->cells);
    free(t->right);
    free(t);
}
