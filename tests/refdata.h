/*
 * refdata.h - the reference figures of the shared data, parsed at run time
 * from $ES_SHARED_DATA/README.md, for test_stats.c and test_cli.c.
 *
 * The figures are read from the README rather than copied into the tests so
 * that there is one source of truth: when the data (and its README) change,
 * the tests follow.  Header-only, static inline, so each test binary gets its
 * own copy without a library of test helpers.
 */
#ifndef ES_TEST_REFDATA_H
#define ES_TEST_REFDATA_H

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ES_REF_MAX_COLS 16
#define ES_REF_MAX_ROWS 64
#define ES_REF_MAX_TABLES 8

typedef struct es_ref_table {
    int ncols, nrows;
    char cols[ES_REF_MAX_COLS][96];
    char cells[ES_REF_MAX_ROWS][ES_REF_MAX_COLS][96];
} es_ref_table;

/* One figure to check: README column, which part of an "a / b" cell, and
 * the name of the figure (the key of `earlystop stats --json`). */
typedef struct es_ref_metric {
    const char *column;
    int part;
    const char *key;
} es_ref_metric;

/* The columns this issue checks.  AC-beta and ESC columns belong to the
 * policy work and are deliberately absent.  "tokens/trace" is the same
 * figure as tokens/item for files of one sample per item. */
static const es_ref_metric es_ref_metrics[] = {
    {"items", 0, "items"},
    {"k", 0, "samples_per_item"},
    {"single EM", 0, "single_em"},
    {"maj@k EM", 0, "maj_em"},
    {"oracle@k", 0, "oracle_em"},
    {"tokens/item (full)", 0, "tokens_per_item"},
    {"consistency-oracle samples / tokens", 0, "consistency_oracle_samples"},
    {"consistency-oracle samples / tokens", 1, "consistency_oracle_tokens"},
    {"full EM", 0, "full_em"},
    {"tokens/trace", 0, "tokens_per_item"},
    {"probes/trace", 0, "probes_per_trace"},
    {"stable-final oracle tokens", 0, "stable_final_tokens"},
};
#define ES_REF_N_METRICS (sizeof es_ref_metrics / sizeof es_ref_metrics[0])

/* $ES_SHARED_DATA, default ../shared/data (tests run from the repo root). */
static inline const char *es_ref_data_dir(void)
{
    const char *d = getenv("ES_SHARED_DATA");
    return d && *d ? d : "../shared/data";
}

/* Trim white space in place. */
static inline char *es_ref_trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* Split a markdown row "| a | b |" into cells; returns the count. */
static inline int es_ref_split(char *line, char out[][96], int max)
{
    int n = 0;
    char *p = strchr(line, '|');
    if (!p) return 0;
    p++;
    for (char *bar; (bar = strchr(p, '|')) && n < max; p = bar + 1) {
        *bar = '\0';
        snprintf(out[n++], 96, "%s", es_ref_trim(p));
    }
    return n;
}

/* 1 when a row is the |---|---| separator under a table's header. */
static inline int es_ref_is_sep(const char *line)
{
    int dashes = 0;
    for (; *line; line++) {
        if (*line == '-') dashes++;
        else if (!strchr("|: \t\r\n", *line)) return 0;
    }
    return dashes > 0;
}

/* Parse every markdown table of the README whose first column is "file" and
 * that has an "items" column (the figure tables, not the licence table).
 * Returns the number of tables (0 on a missing file). */
static inline int es_ref_load(const char *readme, es_ref_table *tabs, int max_tabs)
{
    FILE *fp = fopen(readme, "r");
    if (!fp) return 0;
    char line[2048], prev[2048] = "";
    int nt = 0;
    es_ref_table *t = NULL;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] != '|') {
            t = NULL;
            snprintf(prev, sizeof prev, "%s", line);
            continue;
        }
        if (es_ref_is_sep(line)) {
            char hdr[ES_REF_MAX_COLS][96];
            int n = es_ref_split(prev, hdr, ES_REF_MAX_COLS);
            t = NULL;
            int has_items = 0;
            for (int i = 1; i < n; i++) has_items |= !strcmp(hdr[i], "items");
            if (n > 0 && !strcmp(hdr[0], "file") && has_items && nt < max_tabs) {
                t = &tabs[nt++];
                memset(t, 0, sizeof *t);
                t->ncols = n;
                memcpy(t->cols, hdr, sizeof hdr);
            }
        } else if (t && t->nrows < ES_REF_MAX_ROWS) {
            char cells[ES_REF_MAX_COLS][96];
            int n = es_ref_split(line, cells, ES_REF_MAX_COLS);
            for (int i = 0; i < n && i < t->ncols; i++)
                memcpy(t->cells[t->nrows][i], cells[i], sizeof cells[i]);
            t->nrows++;
        }
        snprintf(prev, sizeof prev, "%s", line);
    }
    fclose(fp);
    return nt;
}

static inline int es_ref_col(const es_ref_table *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (!strcmp(t->cols[i], name)) return i;
    return -1;
}

/* Part `part` of a cell "a / b" as a number, and how many decimals it was
 * printed with (the precision the comparison must honour).  0 when the cell
 * does not hold a number there. */
static inline int es_ref_number(const char *cell, int part, double *x, int *decimals)
{
    const char *p = cell;
    for (int i = 0; i < part; i++) {
        p = strchr(p, '/');
        if (!p) return 0;
        p++;
    }
    while (*p == ' ') p++;
    char *end;
    *x = strtod(p, &end);
    if (end == p) return 0;
    const char *dot = memchr(p, '.', (size_t)(end - p));
    *decimals = dot ? (int)(end - dot - 1) : 0;
    return 1;
}

/* A computed figure equals the README's when it prints the same at the
 * README's precision; the 1e-9 absorbs binary representation at a .5 tie. */
static inline int es_ref_matches(double computed, double ref, int decimals)
{
    double half = 0.5 * pow(10.0, -decimals);
    return fabs(computed - ref) <= half + 1e-9;
}

#endif /* ES_TEST_REFDATA_H */
