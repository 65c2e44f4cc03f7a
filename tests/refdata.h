/*
 * refdata.h - the reference figures of the shared data, parsed at run time
 * from $ES_SHARED_DATA/README.md, for test_stats.c, test_replay.c, test_cli.c
 * and test_cli_eval.c: every table whose first column is "file" and that has
 * an "items" column (the k-sample tables, the two added with the BoInf, CoT-UQ
 * and GPT-4 files, and the long-trace table), every row, every column the
 * test knows.
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
    char title[160];                    /* the heading or "...:" line above it */
    int ncells[ES_REF_MAX_ROWS];        /* cells found in each row (ncols when well formed) */
    char cols[ES_REF_MAX_COLS][96];
    char cells[ES_REF_MAX_ROWS][ES_REF_MAX_COLS][96];
} es_ref_table;

/* The figure tables the README has held since 2026-11-29: a parse that
 * loses one must fail, not check fewer figures. */
static const char *const es_ref_titles[] = {
    "Reference figures",
    "Reference figures, many-sample reasoning models",
    "Reference figures, other additions",
};
#define ES_REF_N_TITLES (sizeof es_ref_titles / sizeof es_ref_titles[0])

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

/* A line that names the table below it: a markdown heading, or a line
 * ending in ':' ("Reference figures, other additions:"); its text, without
 * the '#'s and the ':', into title. */
static inline void es_ref_title_line(const char *line, char *title, size_t cap)
{
    char b[2048];
    snprintf(b, sizeof b, "%s", line);
    char *t = es_ref_trim(b);
    size_t n = strlen(t);
    if (*t == '#') {
        while (*t == '#' || *t == ' ') t++;
    } else if (n && t[n - 1] == ':') {
        t[n - 1] = '\0';
    } else {
        return;
    }
    n = strlen(t) < cap ? strlen(t) : cap - 1;   /* a long line is cut, not an error */
    memcpy(title, t, n);
    title[n] = '\0';
}

/* Parse every markdown table of the README whose first column is "file" and
 * that has an "items" column (the figure tables, not the licence table).
 * Returns the number of tables (0 on a missing file). */
static inline int es_ref_load(const char *readme, es_ref_table *tabs, int max_tabs)
{
    FILE *fp = fopen(readme, "r");
    if (!fp) return 0;
    char line[2048], prev[2048] = "", title[160] = "";
    int nt = 0;
    es_ref_table *t = NULL;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] != '|') {
            t = NULL;
            es_ref_title_line(line, title, sizeof title);
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
                snprintf(t->title, sizeof t->title, "%s", title);
            }
        } else if (t && t->nrows < ES_REF_MAX_ROWS) {
            char cells[ES_REF_MAX_COLS][96];
            int n = es_ref_split(line, cells, ES_REF_MAX_COLS);
            for (int i = 0; i < n && i < t->ncols; i++)
                memcpy(t->cells[t->nrows][i], cells[i], sizeof cells[i]);
            t->ncells[t->nrows++] = n;
        }
        snprintf(prev, sizeof prev, "%s", line);
    }
    fclose(fp);
    return nt;
}

/* How many of es_ref_titles are missing from tabs, each one named on stderr;
 * and rows whose cell count differs from their header, named too. */
static inline int es_ref_check_tables(const es_ref_table *tabs, int nt)
{
    int bad = 0;
    for (size_t k = 0; k < ES_REF_N_TITLES; k++) {
        int found = 0;
        for (int t = 0; t < nt; t++) found |= !strcmp(tabs[t].title, es_ref_titles[k]) && tabs[t].nrows > 0;
        if (!found) {
            fprintf(stderr, "README: no table '%s' with rows\n", es_ref_titles[k]);
            bad++;
        }
    }
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < tabs[t].nrows; r++)
            if (tabs[t].ncells[r] != tabs[t].ncols) {
                fprintf(stderr, "README: table '%s' row %d (%s): %d cells for %d columns\n", tabs[t].title, r + 1,
                        tabs[t].cells[r][0], tabs[t].ncells[r], tabs[t].ncols);
                bad++;
            }
    return bad;
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

/* Part `part` of row r's cell in `column` as a number: 1 when there is
 * one, 0 when the table has no such column; a cell that holds no number
 * there is named on stderr and counted in *failures (0 returned). */
static inline int es_ref_cell(const es_ref_table *t, int r, const char *column, int part, double *x, int *decimals,
                              int *failures)
{
    int c = es_ref_col(t, column);
    if (c < 0) return 0;
    if (es_ref_number(t->cells[r][c], part, x, decimals)) return 1;
    fprintf(stderr, "%s: README cell '%s' of %s is not a number\n", t->cells[r][0], t->cells[r][c], column);
    (*failures)++;
    return 0;
}

/* A computed figure equals the README's when it prints the same at the
 * README's precision; the 1e-9 absorbs binary representation at a .5 tie. */
static inline int es_ref_matches(double computed, double ref, int decimals)
{
    double half = 0.5 * pow(10.0, -decimals);
    return fabs(computed - ref) <= half + 1e-9;
}

#endif /* ES_TEST_REFDATA_H */
