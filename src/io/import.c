/*
 * import.c - `earlystop import`: other people's JSON / JSON Lines -> trace v1.
 *
 * A record (one JSON object) becomes one es_item.  Field paths pick the id,
 * question, gold and samples out of it; answers come from a field or from
 * the last match of a PCRE2 regular expression; gold may come from a second
 * file joined by id; token counts come from a field or are estimated.
 *
 * Memory: everything an item points to (the parsed record, extracted
 * strings, the sample array) belongs to the importer and lives until the
 * next record, so a file of any size streams in constant memory.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "earlystop_io.h"

/* ------------------------------------------------------------ field paths */

/* One step of a path: an object key, or an array index (key == NULL). */
typedef struct path_step {
    char *key;
    size_t index;
} path_step;

typedef struct field_path {
    char *text;          /* as the user wrote it, for error messages */
    size_t n;
    path_step *steps;
} field_path;

static void path_clear(field_path *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->steps[i].key);
    free(p->steps);
    free(p->text);
    memset(p, 0, sizeof *p);
}

/* Append one step; keeps the parser free of realloc bookkeeping. */
static int path_push(field_path *p, char *key, size_t index)
{
    path_step *s = realloc(p->steps, (p->n + 1) * sizeof *s);
    if (!s) { free(key); return ES_ENOMEM; }
    p->steps = s;
    p->steps[p->n].key = key;
    p->steps[p->n].index = index;
    p->n++;
    return ES_OK;
}

/* Parse "[123]" at *s; the bracket is already known to be there. */
static int path_parse_index(const char **s, size_t *out)
{
    const char *q = *s + 1;
    if (!isdigit((unsigned char)*q)) return -1;
    size_t v = 0;
    for (; isdigit((unsigned char)*q); q++) {
        if (v > (SIZE_MAX - 9) / 10) return -1;
        v = v * 10 + (size_t)(*q - '0');
    }
    if (*q != ']') return -1;
    *s = q + 1;
    *out = v;
    return 0;
}

/* Read one key up to '.', '[' or the end, undoing backslash escapes. */
static char *path_parse_key(const char **s)
{
    const char *q = *s;
    char *key = malloc(strlen(q) + 1);
    if (!key) return NULL;
    size_t n = 0;
    while (*q && *q != '.' && *q != '[') {
        if (*q == '\\' && q[1]) q++;
        key[n++] = *q++;
    }
    key[n] = '\0';
    *s = q;
    return key;
}

/*
 * Compile "a.b[2].c" into steps once, so records are walked without
 * re-parsing.  Small grammar on purpose: keys, '.', and [N]; a backslash
 * escapes a special character in a key.  `option` names the path in errors.
 */
static int path_compile(const char *text, field_path *p, const char *option, es_error *err)
{
    memset(p, 0, sizeof *p);
    if (!text || !*text)
        return es_error_set(err, ES_EINVAL, "", 0, option, "empty field path");
    if (!(p->text = strdup(text))) return es_error_set(err, ES_ENOMEM, "", 0, option, "out of memory");
    const char *s = text;
    for (;;) {
        char *key = path_parse_key(&s);
        if (!key) goto nomem;
        int empty = key[0] == '\0';
        if (empty && (*s != '[' || p->n > 0)) { free(key); goto bad; }
        if (empty) free(key);
        else if (path_push(p, key, 0)) goto nomem;
        while (*s == '[') {
            size_t idx;
            if (path_parse_index(&s, &idx)) goto bad;
            if (path_push(p, NULL, idx)) goto nomem;
        }
        if (!*s) return ES_OK;
        if (*s != '.' || !s[1]) goto bad;
        s++;
    }
bad:
    es_error_set(err, ES_EINVAL, "", 0, option,
                 "bad field path '%s' (use key, a.b, a[2].b; see docs/import.md)", text);
    path_clear(p);
    return ES_EINVAL;
nomem:
    path_clear(p);
    return es_error_set(err, ES_ENOMEM, "", 0, option, "out of memory");
}

/* Walk a compiled path; NULL when any step is missing or of the wrong kind. */
static json_t *path_get(const field_path *p, json_t *v)
{
    for (size_t i = 0; v && i < p->n; i++) {
        const path_step *s = &p->steps[i];
        v = s->key ? (json_is_object(v) ? json_object_get(v, s->key) : NULL)
                   : (json_is_array(v) ? json_array_get(v, s->index) : NULL);
    }
    return v;
}

/* ------------------------------------------------------------------ regex */

typedef struct es_regex {
    char *text;
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    uint32_t group;      /* 1 when the pattern has groups, else 0 */
} es_regex;

static void regex_clear(es_regex *r)
{
    pcre2_match_data_free(r->md);
    pcre2_match_context_free(r->mctx);
    pcre2_code_free(r->code);
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* Compile once per importer; UTF mode with Unicode \w \d \s (as in Python's
 * re, where most extraction patterns come from), tolerant of invalid UTF-8 so
 * no input can make matching fail, and a match limit so no pattern can hang. */
static int regex_compile(const char *text, es_regex *r, const char *option, es_error *err)
{
    memset(r, 0, sizeof *r);
    int ec;
    PCRE2_SIZE off;
    r->code = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED,
                            PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &off, NULL);
    if (!r->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return es_error_set(err, ES_EINVAL, "", 0, option,
                            "bad regular expression '%s' at offset %zu: %s", text,
                            (size_t)off, (const char *)msg);
    }
    uint32_t groups = 0;
    pcre2_pattern_info(r->code, PCRE2_INFO_CAPTURECOUNT, &groups);
    r->group = groups > 0 ? 1 : 0;
    r->md = pcre2_match_data_create_from_pattern(r->code, NULL);
    r->mctx = pcre2_match_context_create(NULL);
    r->text = strdup(text);
    if (!r->md || !r->mctx || !r->text) {
        regex_clear(r);
        return es_error_set(err, ES_ENOMEM, "", 0, option, "out of memory");
    }
    pcre2_set_match_limit(r->mctx, 1000000);
    return ES_OK;
}

/* Step past one UTF-8 character, so empty matches cannot loop forever. */
static size_t utf8_next(const char *s, size_t n, size_t at)
{
    at++;
    while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80) at++;
    return at;
}

/*
 * Last non-overlapping match of r in s[0..n), left to right like Python's
 * findall.  *start and *len get group 1 (or the whole match) of the last match;
 * returns 1 found, 0 none (also when that group is unset or empty), or a
 * negative ES_E* code when matching itself failed (match limit).
 */
static int regex_last(const es_regex *r, const char *s, size_t n, size_t *start, size_t *len)
{
    int found = 0;
    size_t at = 0;
    while (at <= n) {
        int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, at, 0, r->md, r->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return ES_ERANGE;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        uint32_t g = r->group;
        found = (uint32_t)rc > g && ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g];
        if (found) { *start = ov[2 * g]; *len = ov[2 * g + 1] - ov[2 * g]; }
        size_t next = ov[1] > ov[0] ? ov[1] : utf8_next(s, n, ov[0]);
        at = next > at ? next : utf8_next(s, n, at);
    }
    return found;
}

/* ------------------------------------------------------- token estimator */

static int is_letter(unsigned char c) { return isalpha(c) || c >= 0x80; }
static int is_nl(unsigned char c) { return c == '\n' || c == '\r'; }

/* Tokens of one letter run: cl100k keeps common words whole and splits
 * rare ones; capitalised words (mostly names) split more often. */
static uint32_t word_tokens(const unsigned char *w, size_t len)
{
    size_t per = isupper(w[0]) ? 5 : 8;
    return (uint32_t)((len + per - 1) / per);
}

/* Whitespace at s[i..): a run holding newlines is one token up to its last
 * newline; trailing spaces are one token, except the last space before a
 * word, which the word takes (cl100k's " word").  Returns the new index. */
static size_t est_space(const unsigned char *s, size_t n, size_t i, uint32_t *tok)
{
    size_t j = i, last_nl = SIZE_MAX;
    while (j < n && isspace(s[j])) { if (is_nl(s[j])) last_nl = j; j++; }
    if (last_nl != SIZE_MAX) { (*tok)++; i = last_nl + 1; }
    if (i >= j) return j;
    if (j < n && !isdigit(s[j]) && s[j - 1] == ' ') j--;   /* the next piece's prefix */
    if (j > i) (*tok)++;
    return j;
}

/*
 * es_estimate_tokens: a hand-written approximation of cl100k_base's
 * pre-tokeniser (words with one leading space or punctuation character,
 * digit groups of up to 3, punctuation runs, whitespace), where a word of
 * L letters counts ceil(L/8), ceil(L/5) when capitalised.  On the shipped
 * traces it is within about 7% of the real counts in total (see
 * docs/import.md).  Bytes >= 0x80 count as letters.
 */
uint32_t es_estimate_tokens(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    uint32_t tok = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (isspace(c) && !(c == ' ' && i + 1 < n && !isspace(s[i + 1]) && !isdigit(s[i + 1]))) {
            i = est_space(s, n, i, &tok);
            continue;
        }
        size_t j = i;
        if (!is_letter(c) && !isdigit(c) && j + 1 < n && is_letter(s[j + 1])) j++;
        if (is_letter(s[j])) {
            size_t w = j;
            while (j < n && is_letter(s[j])) j++;
            tok += word_tokens(s + w, j - w);
        } else if (isdigit(s[j])) {
            size_t d = j;
            while (j < n && isdigit(s[j])) j++;
            tok += (uint32_t)((j - d + 2) / 3);
        } else {
            if (s[j] == ' ') j++;
            while (j < n && !isspace(s[j]) && !is_letter(s[j]) && !isdigit(s[j])) j++;
            while (j < n && is_nl(s[j])) j++;
            if (j == i) j++;
            tok++;
        }
        i = j;
        if (tok > UINT32_MAX - 64) return UINT32_MAX;
    }
    return tok;
}

/* ---------------------------------------------------------------- importer */

struct es_importer {
    es_import_opts o;
    field_path id, question, gold, samples, text, answer, tokens, join, gold_key;
    int has_id, has_question, has_answer, has_tokens;
    es_regex answer_re, gold_re;
    int has_answer_re, has_gold_re;
    json_t *gold_map;       /* join key -> gold value (gold file mode) */
    char *task;
    /* input */
    FILE *fp;
    int own_fp;
    char *path;
    long line;
    size_t index;           /* items converted so far (generated ids) */
    json_t *array;          /* top-level array input */
    size_t array_pos;
    char *buf;
    size_t buf_cap;
    size_t skipped;
    es_error last_skip;
    char *header;
    /* current record */
    json_t *rec;
    char **strs;
    size_t n_strs, cap_strs;
    es_sample *smp;
    size_t cap_smp;
    const char **golds;
    size_t cap_gold;
};

void es_import_opts_init(es_import_opts *o)
{
    memset(o, 0, sizeof *o);
    o->id_digits = -1;
    o->answer_type = ES_ANSWER_TEXT;
}

/* Forget the previous record's memory (strings, parsed JSON). */
static void rec_reset(es_importer *im)
{
    for (size_t i = 0; i < im->n_strs; i++) free(im->strs[i]);
    im->n_strs = 0;
    json_decref(im->rec);
    im->rec = NULL;
}

/* Keep a malloc'd string alive until the next record; frees it on failure. */
static char *rec_keep(es_importer *im, char *s)
{
    if (!s) return NULL;
    if (im->n_strs == im->cap_strs) {
        size_t cap = im->cap_strs ? im->cap_strs * 2 : 64;
        char **p = realloc(im->strs, cap * sizeof *p);
        if (!p) { free(s); return NULL; }
        im->strs = p;
        im->cap_strs = cap;
    }
    im->strs[im->n_strs++] = s;
    return s;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* JSON numbers become strings the way they were most likely written:
 * integers plainly, reals in the shortest form that reads back equal. */
static int scalar_string(const json_t *v, char *buf, size_t cap)
{
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, d);
            if (strtod(buf, NULL) == d) break;
        }
        return 0;
    }
    return -1;
}

/* String view of a string or number value; NULL for anything else.
 * Numbers are formatted into the record's memory. */
static const char *value_text(es_importer *im, const json_t *v, size_t *len)
{
    if (json_is_string(v)) {
        *len = json_string_length(v);
        return json_string_value(v);
    }
    char buf[64];
    if (scalar_string(v, buf, sizeof buf)) return NULL;
    *len = strlen(buf);
    return rec_keep(im, strdup(buf));
}

/* Errors about the current record: file and line (JSON Lines) or the
 * element index (array input, "[17].field"), and the field. */
static int rec_err(es_importer *im, es_error *err, int code, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static int rec_err(es_importer *im, es_error *err, int code, const char *field, const char *fmt, ...)
{
    char where[64], msg[400];
    if (im->array) {
        snprintf(where, sizeof where, "[%zu]%s%s", im->array_pos ? im->array_pos - 1 : 0,
                 field[0] ? "." : "", field);
        field = where;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return es_error_set(err, code, im->path ? im->path : "", im->array ? 0 : im->line, field, "%s", msg);
}

static void lower_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

/* ------------------------------------------------------- importer: setup */

/* Compile one optional path; *has says whether it was given. */
static int opt_path(const char *text, const char *dflt, field_path *p, int *has,
                    const char *option, es_error *err)
{
    if (!text) text = dflt;
    if (has) *has = text != NULL;
    if (!text) return ES_OK;
    return path_compile(text, p, option, err);
}

/* Split "samples[].text" into the array path and the sample text path. */
static int split_samples(es_importer *im, es_error *err)
{
    const char *sp = im->o.samples_path;
    if (!sp || !*sp)
        return es_error_set(err, ES_EINVAL, "", 0, "--samples", "the samples field path is required");
    const char *br = strstr(sp, "[]");
    if (!br) {
        int rc = path_compile(sp, &im->samples, "--samples", err);
        if (rc) return rc;
        return opt_path(im->o.sample_text_path, "text", &im->text, NULL, "--sample-text", err);
    }
    if (im->o.sample_text_path || (br[2] && (br[2] != '.' || !br[3])))
        return es_error_set(err, ES_EINVAL, "", 0, "--samples",
                            "bad samples path '%s' (PATH or PATH[].TEXT, not with --sample-text)", sp);
    char *head = dup_n(sp, (size_t)(br - sp));
    if (!head) return es_error_set(err, ES_ENOMEM, "", 0, "--samples", "out of memory");
    int rc = path_compile(head, &im->samples, "--samples", err);
    free(head);
    if (rc) return rc;
    return path_compile(br[2] ? br + 3 : "text", &im->text, "--samples", err);
}

static int compile_paths(es_importer *im, es_error *err)
{
    const es_import_opts *o = &im->o;
    int rc;
    if (!o->gold_path)
        return es_error_set(err, ES_EINVAL, "", 0, "--gold", "the gold field path is required");
    if ((rc = split_samples(im, err))) return rc;
    if ((rc = opt_path(o->id_path, NULL, &im->id, &im->has_id, "--id", err))) return rc;
    if ((rc = opt_path(o->question_path, NULL, &im->question, &im->has_question, "--question", err)))
        return rc;
    if ((rc = path_compile(o->gold_path, &im->gold, "--gold", err))) return rc;
    if ((rc = opt_path(o->answer_path, NULL, &im->answer, &im->has_answer, "--answer", err))) return rc;
    if ((rc = opt_path(o->tokens_path, NULL, &im->tokens, &im->has_tokens, "--tokens", err))) return rc;
    if (!o->gold_file) return ES_OK;
    if ((rc = opt_path(o->join_path, o->id_path ? o->id_path : "id", &im->join, NULL, "--join-id", err)))
        return rc;
    return opt_path(o->gold_key, "id", &im->gold_key, NULL, "--gold-key", err);
}

static int compile_regexes(es_importer *im, es_error *err)
{
    int rc;
    im->has_answer_re = im->o.answer_regex != NULL;
    im->has_gold_re = im->o.gold_regex != NULL;
    if (im->has_answer_re && (rc = regex_compile(im->o.answer_regex, &im->answer_re, "--answer-regex", err)))
        return rc;
    if (im->has_gold_re && (rc = regex_compile(im->o.gold_regex, &im->gold_re, "--gold-regex", err)))
        return rc;
    if (!im->has_answer && !im->has_answer_re)
        return es_error_set(err, ES_EINVAL, "", 0, "--answer",
                            "give --answer PATH or --answer-regex RE (or both)");
    return ES_OK;
}

/* Join key of a record as a string (strings as is, integers in decimal). */
static int join_key(es_importer *im, const field_path *p, json_t *rec, char *buf, size_t cap)
{
    json_t *v = path_get(p, rec);
    if (json_is_string(v)) {
        snprintf(buf, cap, "%s", json_string_value(v));
        return 0;
    }
    return json_is_integer(v) ? scalar_string(v, buf, cap) : -1;
}

/* Add one gold-file record to the map; errors name the gold file's line. */
static int gold_add(es_importer *im, json_t *rec, const char *file, long line, es_error *err)
{
    char key[256];
    if (!json_is_object(rec))
        return es_error_set(err, ES_EFORMAT, file, line, "", "record is not a JSON object");
    if (join_key(im, &im->gold_key, rec, key, sizeof key))
        return es_error_set(err, ES_EFORMAT, file, line, im->gold_key.text,
                            "missing, or not a string or integer (the join key)");
    json_t *g = path_get(&im->gold, rec);
    if (!g || json_is_null(g))
        return es_error_set(err, ES_EFORMAT, file, line, im->gold.text, "missing gold");
    if (json_object_get(im->gold_map, key))
        return es_error_set(err, ES_EFORMAT, file, line, im->gold_key.text,
                            "duplicate key '%s' in the gold file", key);
    if (json_object_set(im->gold_map, key, g))
        return es_error_set(err, ES_ENOMEM, file, line, "", "out of memory");
    return ES_OK;
}

/* Read every record of the gold file (JSON Lines or one array) into the
 * map up front: gold files are small and joins must not depend on order. */
static int load_gold(es_importer *im, es_error *err)
{
    const char *file = im->o.gold_file;
    if (!(im->gold_map = json_object()))
        return es_error_set(err, ES_ENOMEM, file, 0, "", "out of memory");
    FILE *fp = fopen(file, "rb");
    if (!fp) return es_error_set(err, ES_EIO, file, 0, "--gold-file", "cannot open: %s", strerror(errno));
    int c;
    while ((c = fgetc(fp)) != EOF && isspace(c)) {}
    int rc = ES_OK;
    if (c == '[') {
        rewind(fp);
        json_error_t je;
        json_t *arr = json_loadf(fp, JSON_REJECT_DUPLICATES, &je);
        if (!arr)
            rc = es_error_set(err, ES_EPARSE, file, je.line, "", "bad JSON: %s", je.text);
        for (size_t i = 0; arr && rc == ES_OK && i < json_array_size(arr); i++)
            rc = gold_add(im, json_array_get(arr, i), file, 0, err);
        json_decref(arr);
        fclose(fp);
        return rc;
    }
    rewind(fp);
    char *buf = NULL;
    size_t cap = 0;
    long line = 0;
    ssize_t n;
    while (rc == ES_OK && (n = getline(&buf, &cap, fp)) >= 0) {
        line++;
        size_t len = (size_t)n;
        while (len && isspace((unsigned char)buf[len - 1])) len--;
        if (!len) continue;
        json_error_t je;
        json_t *rec = json_loadb(buf, len, 0, &je);
        if (!rec) { rc = es_error_set(err, ES_EPARSE, file, line, "", "bad JSON: %s", je.text); break; }
        rc = gold_add(im, rec, file, line, err);
        json_decref(rec);
    }
    free(buf);
    fclose(fp);
    return rc;
}

/* Default task: the input's file name without directory and extension. */
static char *task_from_path(const char *path)
{
    if (!path || !strcmp(path, "-")) return strdup("default");
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot > b ? (size_t)(dot - b) : strlen(b);
    return n ? dup_n(b, n) : strdup("default");
}

int es_importer_new(const es_import_opts *opts, es_importer **out, es_error *err)
{
    *out = NULL;
    if (!opts) return es_error_set(err, ES_EINVAL, "", 0, "", "no options");
    es_importer *im = calloc(1, sizeof *im);
    if (!im) return es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    im->o = *opts;
    if (im->o.id_digits < 0) im->o.id_digits = im->o.id_path ? 0 : 4;
    if (im->o.id_digits > 20) im->o.id_digits = 20;
    int rc = compile_paths(im, err);
    if (!rc) rc = compile_regexes(im, err);
    if (!rc && im->o.gold_file) rc = load_gold(im, err);
    if (!rc && !(im->task = opts->task ? strdup(opts->task) : task_from_path(NULL)))
        rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
    if (rc) { es_importer_free(im); return rc; }
    *out = im;
    return ES_OK;
}

static void close_input(es_importer *im)
{
    if (im->fp && im->own_fp) fclose(im->fp);
    im->fp = NULL;
    json_decref(im->array);
    im->array = NULL;
    free(im->path);
    im->path = NULL;
}

void es_importer_free(es_importer *im)
{
    if (!im) return;
    rec_reset(im);
    close_input(im);
    field_path *ps[] = {&im->id, &im->question, &im->gold, &im->samples, &im->text,
                        &im->answer, &im->tokens, &im->join, &im->gold_key};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) path_clear(ps[i]);
    regex_clear(&im->answer_re);
    regex_clear(&im->gold_re);
    json_decref(im->gold_map);
    free(im->task);
    free(im->buf);
    free(im->header);
    free(im->strs);
    free(im->smp);
    free(im->golds);
    free(im);
}

/* ------------------------------------------------------ importer: records */

/* id: the field (prefix + value, integers zero-padded) or prefix + index. */
static int conv_id(es_importer *im, json_t *rec, es_item *item, es_error *err)
{
    const char *prefix = im->o.id_prefix ? im->o.id_prefix : im->has_id ? "" : "item-";
    char buf[64];
    const char *val = buf;
    if (!im->has_id) {
        snprintf(buf, sizeof buf, "%0*zu", im->o.id_digits, im->index);
    } else {
        json_t *v = path_get(&im->id, rec);
        if (json_is_integer(v))
            snprintf(buf, sizeof buf, "%0*" JSON_INTEGER_FORMAT, im->o.id_digits, json_integer_value(v));
        else if (json_is_string(v) && json_string_length(v) > 0)
            val = json_string_value(v);
        else
            return rec_err(im, err, ES_EFORMAT, im->id.text, "missing, or not a string or integer");
    }
    size_t n = strlen(prefix) + strlen(val) + 1;
    char *id = rec_keep(im, malloc(n));
    if (!id) return ES_ENOMEM;
    snprintf(id, n, "%s%s", prefix, val);
    item->id = id;
    return ES_OK;
}

/* One gold value: string/number, through --gold-regex when given, and
 * lower-cased with the answers under ES_IMPORT_LOWER so both stay alike. */
static int conv_gold1(es_importer *im, const json_t *v, const char **out, const char *field,
                      es_error *err)
{
    size_t len;
    const char *s = value_text(im, v, &len);
    if (!s) return rec_err(im, err, ES_EFORMAT, field, "gold is not a string or number");
    size_t at = 0, n = len;
    if (im->has_gold_re) {
        int f = regex_last(&im->gold_re, s, len, &at, &n);
        if (f < 0) return rec_err(im, err, ES_ERANGE, field, "--gold-regex hit its match limit");
        if (!f) return rec_err(im, err, ES_EFORMAT, field, "--gold-regex does not match '%.60s'", s);
    } else if (!(im->o.flags & ES_IMPORT_LOWER)) {
        *out = s;
        return ES_OK;
    }
    char *g = rec_keep(im, dup_n(s + at, n));
    if (!g) return ES_ENOMEM;
    if (im->o.flags & ES_IMPORT_LOWER) lower_ascii(g);
    *out = g;
    return ES_OK;
}

/* The gold value of a record: its own field, or the gold file's by key. */
static json_t *find_gold(es_importer *im, json_t *rec, const char **field, es_error *err, int *rc)
{
    *field = im->gold.text;
    if (!im->gold_map) {
        json_t *g = path_get(&im->gold, rec);
        if (!g || json_is_null(g)) *rc = rec_err(im, err, ES_EFORMAT, *field, "missing gold");
        return g;
    }
    char key[256];
    *field = im->join.text;
    if (join_key(im, &im->join, rec, key, sizeof key)) {
        *rc = rec_err(im, err, ES_EFORMAT, *field, "missing, or not a string or integer (the join key)");
        return NULL;
    }
    json_t *g = json_object_get(im->gold_map, key);
    if (!g) *rc = rec_err(im, err, ES_EFORMAT, *field, "no gold for '%s' in %s", key, im->o.gold_file);
    return g;
}

static int conv_gold(es_importer *im, json_t *rec, es_item *item, es_error *err)
{
    const char *field;
    int rc = ES_OK;
    json_t *g = find_gold(im, rec, &field, err, &rc);
    if (!g) return rc;
    size_t n = json_is_array(g) ? json_array_size(g) : 1;
    if (n == 0) return rec_err(im, err, ES_EFORMAT, field, "empty gold list");
    if (n > im->cap_gold) {
        const char **p = realloc(im->golds, n * sizeof *p);
        if (!p) return ES_ENOMEM;
        im->golds = p;
        im->cap_gold = n;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = conv_gold1(im, json_is_array(g) ? json_array_get(g, i) : g, &im->golds[i], field, err)))
            return rc;
    item->n_gold = n;
    item->gold = im->golds;
    return ES_OK;
}

/* Field name of sample i's sub-field, e.g. "completions[3].answer". */
static void sample_field(const es_importer *im, size_t i, const char *sub, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s[%zu]%s%s", im->samples.text, i, sub ? "." : "", sub ? sub : "");
}

/* A per-sample value: inside the sample object, or for string samples the
 * i-th element of a parallel array at the same path in the record. */
static json_t *sample_value(const field_path *p, json_t *rec, json_t *smp, size_t i)
{
    if (json_is_object(smp)) return path_get(p, smp);
    json_t *arr = path_get(p, rec);
    return json_is_array(arr) ? json_array_get(arr, i) : NULL;
}

/* Answer of one sample: field and/or last regex match, null when none. */
static int conv_answer(es_importer *im, json_t *rec, json_t *smp, size_t i, const char *text,
                       es_sample *out, es_error *err)
{
    char field[64];
    const char *s = text;
    size_t len = text ? strlen(text) : 0;
    out->answer = NULL;
    if (im->has_answer) {
        json_t *v = sample_value(&im->answer, rec, smp, i);
        sample_field(im, i, im->answer.text, field, sizeof field);
        if (!v || json_is_null(v)) return ES_OK;
        if (!(s = value_text(im, v, &len)))
            return rec_err(im, err, ES_EFORMAT, field, "answer is not a string, number or null");
    } else if (!s) {
        sample_field(im, i, im->text.text, field, sizeof field);
        return rec_err(im, err, ES_EFORMAT, field, "no text to extract the answer from");
    }
    size_t at = 0, n = len;
    if (im->has_answer_re) {
        int f = regex_last(&im->answer_re, s, len, &at, &n);
        sample_field(im, i, NULL, field, sizeof field);
        if (f < 0) return rec_err(im, err, ES_ERANGE, field, "--answer-regex hit its match limit");
        if (!f) return ES_OK;
    }
    char *a = rec_keep(im, dup_n(s + at, n));
    if (!a) return ES_ENOMEM;
    if (im->o.flags & ES_IMPORT_LOWER) lower_ascii(a);
    out->answer = a;
    return ES_OK;
}

/* Tokens of one sample: an integer field, or the estimate of its text. */
static int conv_tokens(es_importer *im, json_t *rec, json_t *smp, size_t i, const char *text,
                       es_sample *out, es_error *err)
{
    char field[64];
    if (!im->has_tokens) {
        if (!text) {
            sample_field(im, i, im->text.text, field, sizeof field);
            return rec_err(im, err, ES_EFORMAT, field, "no text to estimate tokens from (give --tokens)");
        }
        out->tokens = es_estimate_tokens(text, strlen(text));
        return ES_OK;
    }
    json_t *v = sample_value(&im->tokens, rec, smp, i);
    sample_field(im, i, im->tokens.text, field, sizeof field);
    double d = json_is_integer(v) ? (double)json_integer_value(v) : json_is_real(v) ? json_real_value(v) : -1;
    if (d < 0 || d > UINT32_MAX || d != floor(d))
        return rec_err(im, err, ES_EFORMAT, field, "tokens must be a whole number >= 0");
    out->tokens = (uint32_t)d;
    return ES_OK;
}

static int conv_sample(es_importer *im, json_t *rec, json_t *smp, size_t i, es_sample *out,
                       es_error *err)
{
    char field[64];
    memset(out, 0, sizeof *out);
    out->confidence = NAN;
    const char *text = NULL;
    if (json_is_string(smp)) {
        text = json_string_value(smp);
    } else if (json_is_object(smp)) {
        json_t *t = path_get(&im->text, smp);
        if (json_is_string(t)) text = json_string_value(t);
        else if (t && !json_is_null(t)) {
            sample_field(im, i, im->text.text, field, sizeof field);
            return rec_err(im, err, ES_EFORMAT, field, "text is not a string");
        }
    } else {
        sample_field(im, i, NULL, field, sizeof field);
        return rec_err(im, err, ES_EFORMAT, field, "a sample must be a string or an object");
    }
    int rc = conv_answer(im, rec, smp, i, text, out, err);
    if (!rc) rc = conv_tokens(im, rec, smp, i, text, out, err);
    if (!(im->o.flags & ES_IMPORT_NO_TEXT)) out->text = text;
    return rc;
}

static int conv_samples(es_importer *im, json_t *rec, es_item *item, es_error *err)
{
    json_t *arr = path_get(&im->samples, rec);
    if (!json_is_array(arr))
        return rec_err(im, err, ES_EFORMAT, im->samples.text, "missing, or not an array of samples");
    size_t n = json_array_size(arr);
    if (n == 0) return rec_err(im, err, ES_EFORMAT, im->samples.text, "no samples");
    if (n > im->cap_smp) {
        es_sample *p = realloc(im->smp, n * sizeof *p);
        if (!p) return ES_ENOMEM;
        im->smp = p;
        im->cap_smp = n;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = conv_sample(im, rec, json_array_get(arr, i), i, &im->smp[i], err);
        if (rc) return rc;
    }
    item->n_samples = n;
    item->samples = im->smp;
    return ES_OK;
}

static int conv_question(es_importer *im, json_t *rec, es_item *item)
{
    item->question = NULL;
    if (!im->has_question || (im->o.flags & ES_IMPORT_NO_TEXT)) return ES_OK;
    size_t len;
    json_t *v = path_get(&im->question, rec);
    if (json_is_string(v) || json_is_number(v))
        if (!(item->question = value_text(im, v, &len))) return ES_ENOMEM;
    return ES_OK;
}

/* Convert the parsed record im->rec; ENOMEM gets its context here. */
static int convert(es_importer *im, es_item *item, es_error *err)
{
    json_t *rec = im->rec;
    memset(item, 0, sizeof *item);
    if (!json_is_object(rec))
        return rec_err(im, err, ES_EFORMAT, "", "record is not a JSON object");
    item->task = im->task;
    item->answer_type = im->o.answer_type;
    int rc = conv_id(im, rec, item, err);
    if (!rc) rc = conv_question(im, rec, item);
    if (!rc) rc = conv_gold(im, rec, item, err);
    if (!rc) rc = conv_samples(im, rec, item, err);
    if (rc == ES_ENOMEM) rec_err(im, err, ES_ENOMEM, "", "out of memory");
    if (!rc) im->index++;
    return rc;
}

int es_importer_record(es_importer *im, const char *json, size_t len, es_item *item, es_error *err)
{
    rec_reset(im);
    json_error_t je;
    im->rec = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!im->rec) {
        return rec_err(im, err, ES_EPARSE, "", "bad JSON at column %d: %s", je.column, je.text);
    }
    return convert(im, item, err);
}

/* ------------------------------------------------------- importer: input */

int es_importer_open(es_importer *im, const char *path, es_error *err)
{
    close_input(im);
    if (!path) path = "-";
    int is_stdin = !strcmp(path, "-");
    im->fp = is_stdin ? stdin : fopen(path, "rb");
    im->own_fp = !is_stdin;
    if (!im->fp) return es_error_set(err, ES_EIO, path, 0, "", "cannot open: %s", strerror(errno));
    im->path = strdup(is_stdin ? "<stdin>" : path);
    im->line = 0;
    im->index = 0;
    im->array_pos = 0;
    im->skipped = 0;
    if (!im->o.task) {
        char *t = task_from_path(is_stdin ? NULL : path);
        if (t) { free(im->task); im->task = t; }
    }
    if (!im->path) return es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
    int c;
    while ((c = fgetc(im->fp)) != EOF && (isspace(c) || c == 0xEF || c == 0xBB || c == 0xBF)) {
        if (c == '\n') im->line++;
    }
    if (c != '[') {
        if (c != EOF) ungetc(c, im->fp);
        return ES_OK;
    }
    ungetc(c, im->fp);
    json_error_t je;
    im->array = json_loadf(im->fp, JSON_REJECT_DUPLICATES, &je);
    if (!im->array)
        return es_error_set(err, ES_EPARSE, im->path, je.line + im->line, "", "bad JSON: %s", je.text);
    return ES_OK;
}

/* Next raw record from the input; ES_EOF at the end. */
static int next_record(es_importer *im, es_item *item, es_error *err)
{
    if (im->array) {
        if (im->array_pos >= json_array_size(im->array)) return ES_EOF;
        rec_reset(im);
        im->rec = json_incref(json_array_get(im->array, im->array_pos++));
        return convert(im, item, err);
    }
    for (;;) {
        ssize_t n = getline(&im->buf, &im->buf_cap, im->fp);
        if (n < 0) {
            if (ferror(im->fp))
                return es_error_set(err, ES_EIO, im->path, im->line, "", "read error: %s", strerror(errno));
            return ES_EOF;
        }
        im->line++;
        size_t len = (size_t)n;
        while (len && isspace((unsigned char)im->buf[len - 1])) len--;
        size_t start = 0;
        while (start < len && isspace((unsigned char)im->buf[start])) start++;
        if (start < len) return es_importer_record(im, im->buf + start, len - start, item, err);
    }
}

int es_importer_next(es_importer *im, es_item *item, es_error *err)
{
    if (!im->fp && !im->array)
        return es_error_set(err, ES_EINVAL, "", 0, "", "no input open (es_importer_open)");
    for (;;) {
        es_error e;
        memset(&e, 0, sizeof e);
        int rc = next_record(im, item, &e);
        int skippable = rc == ES_EPARSE || rc == ES_EFORMAT || rc == ES_ERANGE;
        if (rc && rc != ES_EOF && skippable && (im->o.flags & ES_IMPORT_SKIP_BAD)) {
            im->skipped++;
            im->last_skip = e;
            continue;
        }
        if (rc && rc != ES_EOF && err) *err = e;
        return rc;
    }
}

size_t es_importer_skipped(const es_importer *im) { return im->skipped; }

const es_error *es_importer_last_skip(const es_importer *im) { return &im->last_skip; }

/* ------------------------------------------------------------------ header */

static int set_str(json_t *o, const char *key, const char *val)
{
    return val ? json_object_set_new(o, key, json_string(val)) : 0;
}

/* Provenance the writer puts on line 1: where the items came from, how
 * answers were extracted and whether token counts are real or estimated. */
const char *es_importer_header(es_importer *im)
{
    if (im->header) return im->header;
    json_t *h = json_object();
    if (!h) return NULL;
    char buf[1024];
    set_str(h, "model", im->o.model);
    set_str(h, "source", im->o.source ? im->o.source : im->path);
    if (im->has_answer_re)
        snprintf(buf, sizeof buf, "last match of %s%s%s%s", im->answer_re.text,
                 im->has_answer ? " in field " : "", im->has_answer ? im->answer.text : "",
                 (im->o.flags & ES_IMPORT_LOWER) ? ", lower-cased" : "");
    else
        snprintf(buf, sizeof buf, "field %s%s", im->answer.text,
                 (im->o.flags & ES_IMPORT_LOWER) ? ", lower-cased" : "");
    set_str(h, "answer_extraction", buf);
    if (im->has_gold_re || im->o.gold_file) {
        snprintf(buf, sizeof buf, "field %s%s%s%s%s", im->gold.text,
                 im->o.gold_file ? " of " : "", im->o.gold_file ? im->o.gold_file : "",
                 im->has_gold_re ? ", last match of " : "", im->has_gold_re ? im->gold_re.text : "");
        set_str(h, "gold_extraction", buf);
    }
    if (im->has_tokens)
        snprintf(buf, sizeof buf, "from field %s", im->tokens.text);
    else
        snprintf(buf, sizeof buf, "estimated: es_estimate_tokens, a cl100k_base approximation "
                                  "(word/digit/punctuation pieces), not real counts");
    set_str(h, "token_counts", buf);
    set_str(h, "importer", "earlystop import " ES_VERSION_STRING);
    im->header = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    return im->header;
}
