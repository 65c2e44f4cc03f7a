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
 * re, where most extraction patterns come from), and a match limit so no
 * pattern can hang.  Not PCRE2_MATCH_INVALID_UTF: in that mode every
 * pcre2_match scans the rest of the subject for invalid UTF-8, which made
 * finding every match quadratic in the subject's length; regex_find
 * validates a subject once instead and then matches with NO_UTF_CHECK. */
static int regex_compile(const char *text, es_regex *r, const char *option, es_error *err)
{
    memset(r, 0, sizeof *r);
    int ec;
    PCRE2_SIZE off;
    r->code = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &off, NULL);
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

/* What a search found: REGEX_NONE, or the span of the answer. */
enum { FIND_NONE = 0, FIND_OK = 1, FIND_LIMIT = -1, FIND_BAD_UTF8 = -2 };

/*
 * The last (or, with `first`, the first) non-overlapping match of r in
 * s[0..n), left to right like Python's findall.  *start and *len get group 1
 * (or the whole match) of that match.  Returns FIND_OK, FIND_NONE (also when
 * that group is unset or empty), FIND_LIMIT when the match limit was hit, or
 * FIND_BAD_UTF8 with *start at the first invalid byte.  The subject's UTF-8
 * is checked by the first pcre2_match only: once per subject, not per match.
 */
static int regex_find(const es_regex *r, const char *s, size_t n, int first, size_t *start, size_t *len)
{
    int found = FIND_NONE;
    size_t at = 0;
    uint32_t check = 0;
    while (at <= n) {
        int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, at, check, r->md, r->mctx);
        check = PCRE2_NO_UTF_CHECK;
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) {
            *start = pcre2_get_startchar(r->md);
            return FIND_BAD_UTF8;
        }
        if (rc < 0) return FIND_LIMIT;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        uint32_t g = r->group;
        found = (uint32_t)rc > g && ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g];
        if (found) { *start = ov[2 * g]; *len = ov[2 * g + 1] - ov[2 * g]; }
        if (first) break;
        size_t next = ov[1] > ov[0] ? ov[1] : utf8_next(s, n, ov[0]);
        at = next > at ? next : utf8_next(s, n, at);
    }
    return found;
}

/* -------------------------------------------------------------- extractors */

/* 1 when s[i..) starts the command `cmd` (e.g. "\\boxed") as a whole
 * command: `\boxedfoo` is another command. */
static int at_command(const char *s, size_t n, size_t i, const char *cmd)
{
    size_t m = strlen(cmd);
    return i + m <= n && !memcmp(s + i, cmd, m) && (i + m == n || !isalpha((unsigned char)s[i + m]));
}

/* Length of the command starting at s[i] if it is \boxed or \fbox, else 0. */
static size_t box_command(const char *s, size_t n, size_t i)
{
    if (at_command(s, n, i, "\\boxed")) return 6;
    if (at_command(s, n, i, "\\fbox")) return 5;
    return 0;
}

/* The braced argument after a box command at s[i] (cmd bytes long):
 * white space, '{', then text up to the '}' that balances it; \{ \} and
 * \\ are escapes that do not count.  1 with the span, 0 when the argument
 * is missing or never closed (a cut-off sample). */
static int box_argument(const char *s, size_t n, size_t i, size_t cmd, size_t *start, size_t *len)
{
    size_t j = i + cmd;
    while (j < n && isspace((unsigned char)s[j])) j++;
    if (j >= n || s[j] != '{') return 0;
    size_t open = j++, depth = 1;
    for (; j < n; j++) {
        if (s[j] == '\\') { j++; continue; }
        if (s[j] == '{') depth++;
        else if (s[j] == '}' && --depth == 0) break;
    }
    if (j >= n) return 0;
    size_t a = open + 1, b = j;
    while (a < b && isspace((unsigned char)s[a])) a++;
    while (b > a && isspace((unsigned char)s[b - 1])) b--;
    *start = a;
    *len = b - a;
    return b > a;
}

/*
 * `--answer-extract boxed`: the argument of the last (or first) \boxed{...}
 * or \fbox{...} in s, braces balanced, so \boxed{\frac{a}{b}} gives
 * \frac{a}{b}.  As in the MATH graders (last_boxed_only_string), the last
 * box decides: when it is never closed or empty the answer is null, not an
 * earlier box.
 */
static int boxed_find(const char *s, size_t n, int first, size_t *start, size_t *len)
{
    size_t at = SIZE_MAX, cmd = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') continue;
        size_t c = box_command(s, n, i);
        if (!c) { i++; continue; }   /* skip the escaped character (\\boxed is no box) */
        at = i;
        cmd = c;
        if (first) break;
        i += c - 1;
    }
    if (at == SIZE_MAX) return FIND_NONE;
    return box_argument(s, n, at, cmd, start, len) ? FIND_OK : FIND_NONE;
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
    int boxed;              /* --answer-extract boxed */
    int gold_scores;        /* the gold path names an object of scores */
    json_t *gold_map;       /* join key -> gold value (gold file mode) */
    json_t *ids;            /* id -> where it was seen (line, or array element) */
    es_dup *dup;            /* duplicate texts of the items handed out */
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
    const char **texts;     /* [cap_smp] each sample's text, kept or not */
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
    if (!o->gold_path == !o->gold_scores_path)
        return es_error_set(err, ES_EINVAL, "", 0, o->gold_path ? "--gold-scores" : "--gold",
                            o->gold_path ? "give --gold PATH or --gold-scores PATH, not both"
                                         : "the gold field path is required (--gold PATH, or --gold-scores PATH)");
    im->gold_scores = o->gold_scores_path != NULL;
    if ((rc = split_samples(im, err))) return rc;
    if ((rc = opt_path(o->id_path, NULL, &im->id, &im->has_id, "--id", err))) return rc;
    if ((rc = opt_path(o->question_path, NULL, &im->question, &im->has_question, "--question", err)))
        return rc;
    if (im->gold_scores) rc = path_compile(o->gold_scores_path, &im->gold, "--gold-scores", err);
    else rc = path_compile(o->gold_path, &im->gold, "--gold", err);
    if (rc) return rc;
    if ((rc = opt_path(o->answer_path, NULL, &im->answer, &im->has_answer, "--answer", err))) return rc;
    if ((rc = opt_path(o->tokens_path, NULL, &im->tokens, &im->has_tokens, "--tokens", err))) return rc;
    if (!o->gold_file) return ES_OK;
    if ((rc = opt_path(o->join_path, o->id_path ? o->id_path : "id", &im->join, NULL, "--join-id", err)))
        return rc;
    return opt_path(o->gold_key, "id", &im->gold_key, NULL, "--gold-key", err);
}

/* The answer extraction: a regex or a named extractor, on the answer field
 * or the text. */
static int compile_extraction(es_importer *im, es_error *err)
{
    int rc;
    const char *ex = im->o.answer_extract;
    im->has_answer_re = im->o.answer_regex != NULL;
    im->has_gold_re = im->o.gold_regex != NULL;
    if (ex && strcmp(ex, "boxed"))
        return es_error_set(err, ES_EINVAL, "", 0, "--answer-extract",
                            "unknown extractor '%s' (known: boxed)", ex);
    if (ex && im->has_answer_re)
        return es_error_set(err, ES_EINVAL, "", 0, "--answer-extract",
                            "give --answer-extract or --answer-regex, not both");
    im->boxed = ex != NULL;
    if (im->has_answer_re && (rc = regex_compile(im->o.answer_regex, &im->answer_re, "--answer-regex", err)))
        return rc;
    if (im->has_gold_re && (rc = regex_compile(im->o.gold_regex, &im->gold_re, "--gold-regex", err)))
        return rc;
    if (!im->has_answer && !im->has_answer_re && !im->boxed)
        return es_error_set(err, ES_EINVAL, "", 0, "--answer",
                            "give --answer PATH, --answer-regex RE or --answer-extract boxed "
                            "(a field, an extraction, or both)");
    if ((im->o.flags & ES_IMPORT_FIRST_MATCH) && !im->has_answer_re && !im->boxed)
        return es_error_set(err, ES_EINVAL, "", 0, "--match",
                            "--match applies to --answer-regex or --answer-extract; neither is given");
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

/* 1 for the header line of a trace file ({"format":"earlystop-traces",...}),
 * which a trace file given as the gold file starts with. */
static int is_trace_header(json_t *rec)
{
    json_t *f = json_object_get(rec, "format");
    return json_is_string(f) && !strcmp(json_string_value(f), "earlystop-traces");
}

/* Read every record of the gold file (JSON Lines, one array, or a trace
 * file) into the map up front: gold files are small and joins must not
 * depend on order. */
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
    long line = 0, records = 0;
    ssize_t n;
    while (rc == ES_OK && (n = getline(&buf, &cap, fp)) >= 0) {
        line++;
        size_t len = (size_t)n;
        while (len && isspace((unsigned char)buf[len - 1])) len--;
        if (!len) continue;
        json_error_t je;
        json_t *rec = json_loadb(buf, len, 0, &je);
        if (!rec) { rc = es_error_set(err, ES_EPARSE, file, line, "", "bad JSON: %s", je.text); break; }
        if (records++ > 0 || !is_trace_header(rec)) rc = gold_add(im, rec, file, line, err);
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

/* Strings from the command line go into every item or the header as JSON
 * strings, which must be UTF-8: refuse them here rather than fail later
 * at the first write. */
static int check_utf8_opts(const es_import_opts *o, es_error *err)
{
    const struct { const char *v, *option; } tab[] = {
        {o->id_prefix, "--id-prefix"}, {o->task, "--task"}, {o->model, "--model"}, {o->source, "--source"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        if (!tab[i].v) continue;
        json_t *j = json_string(tab[i].v);
        if (!j) return es_error_set(err, ES_EINVAL, "", 0, tab[i].option, "not valid UTF-8");
        json_decref(j);
    }
    return ES_OK;
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
    int rc = check_utf8_opts(opts, err);
    if (!rc) rc = compile_paths(im, err);
    if (!rc) rc = compile_extraction(im, err);
    if (!rc && im->o.gold_file) rc = load_gold(im, err);
    if (!rc && (!(im->ids = json_object()) || es_dup_new(&im->dup)))
        rc = es_error_set(err, ES_ENOMEM, "", 0, "", "out of memory");
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
    json_decref(im->ids);
    es_dup_free(im->dup);
    free(im->task);
    free(im->buf);
    free(im->header);
    free(im->strs);
    free(im->smp);
    free(im->texts);
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

/* One gold text, through --gold-regex when given, and lower-cased with the
 * answers under ES_IMPORT_LOWER so both stay alike.  s lives as long as the
 * record (or the gold file's map). */
static int gold_text(es_importer *im, const char *s, size_t len, const char **out, const char *field,
                     es_error *err)
{
    size_t at = 0, n = len;
    if (im->has_gold_re) {
        int f = regex_find(&im->gold_re, s, len, 0, &at, &n);
        if (f == FIND_LIMIT) return rec_err(im, err, ES_ERANGE, field, "--gold-regex hit its match limit");
        if (f == FIND_BAD_UTF8)
            return rec_err(im, err, ES_EFORMAT, field, "invalid UTF-8 at byte %zu of the gold", at);
        if (f == FIND_NONE) return rec_err(im, err, ES_EFORMAT, field, "--gold-regex does not match '%.60s'", s);
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

/* One gold value: a string or a number. */
static int conv_gold1(es_importer *im, const json_t *v, const char **out, const char *field,
                      es_error *err)
{
    size_t len;
    const char *s = value_text(im, v, &len);
    if (!s) return rec_err(im, err, ES_EFORMAT, field, "gold is not a string or number");
    return gold_text(im, s, len, out, field, err);
}

/* Room for n gold answers. */
static int gold_reserve(es_importer *im, size_t n)
{
    if (n <= im->cap_gold) return ES_OK;
    const char **p = realloc(im->golds, n * sizeof *p);
    if (!p) return ES_ENOMEM;
    im->golds = p;
    im->cap_gold = n;
    return ES_OK;
}

/*
 * --gold-scores: gold given as an object of scores, as BIG-bench's
 * target_scores ({"05/01/2021": 1, "05/02/2021": 0}).  The gold is the key
 * with the top score, or every key sharing it (a list of accepted answers),
 * in the object's order.  A top score <= 0 marks no answer correct: error.
 */
static int conv_gold_scores(es_importer *im, json_t *g, es_item *item, const char *field, es_error *err)
{
    if (!json_is_object(g) || json_object_size(g) == 0)
        return rec_err(im, err, ES_EFORMAT, field,
                       "gold scores must be a non-empty object of numbers ({\"answer\": score, ...})");
    const char *key;
    json_t *v;
    double top = -INFINITY;
    json_object_foreach(g, key, v) {
        if (!json_is_number(v))
            return rec_err(im, err, ES_EFORMAT, field, "the score of '%.60s' is not a number", key);
        if (json_number_value(v) > top) top = json_number_value(v);
    }
    if (!(top > 0))
        return rec_err(im, err, ES_EFORMAT, field, "no key has a score above 0 (top score %g)", top);
    if (gold_reserve(im, json_object_size(g))) return ES_ENOMEM;
    size_t n = 0;
    json_object_foreach(g, key, v) {
        if (json_number_value(v) != top) continue;
        int rc = gold_text(im, key, strlen(key), &im->golds[n], field, err);
        if (rc) return rc;
        n++;
    }
    item->n_gold = n;
    item->gold = im->golds;
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
    if (im->gold_scores) return conv_gold_scores(im, g, item, field, err);
    size_t n = json_is_array(g) ? json_array_size(g) : 1;
    if (n == 0) return rec_err(im, err, ES_EFORMAT, field, "empty gold list");
    if (gold_reserve(im, n)) return ES_ENOMEM;
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

/* Answer of one sample: field and/or the extraction (regex, boxed), null
 * when none. */
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
    int first = (im->o.flags & ES_IMPORT_FIRST_MATCH) != 0;
    if (im->has_answer_re || im->boxed) {
        int f = im->boxed ? boxed_find(s, len, first, &at, &n) : regex_find(&im->answer_re, s, len, first, &at, &n);
        sample_field(im, i, NULL, field, sizeof field);
        if (f == FIND_LIMIT) return rec_err(im, err, ES_ERANGE, field, "--answer-regex hit its match limit");
        if (f == FIND_BAD_UTF8) return rec_err(im, err, ES_EFORMAT, field, "invalid UTF-8 at byte %zu", at);
        if (f == FIND_NONE) return ES_OK;
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
    im->texts[i] = text;
    if (!(im->o.flags & ES_IMPORT_NO_TEXT)) out->text = text;
    return rc;
}

/*
 * String samples take --answer and --tokens from arrays in the record, one
 * element per sample.  An array of another length would pair answers with
 * the wrong samples, so it is an error naming the record, never padded.
 */
static int check_parallel(es_importer *im, json_t *rec, const field_path *p, const char *option,
                          size_t n, const char *id, es_error *err)
{
    json_t *arr = path_get(p, rec);
    if (!json_is_array(arr))
        return rec_err(im, err, ES_EFORMAT, p->text,
                       "record '%s': missing, or not an array (with string samples, %s names an "
                       "array parallel to %s)", id, option, im->samples.text);
    if (json_array_size(arr) != n)
        return rec_err(im, err, ES_EFORMAT, p->text,
                       "record '%s': %s array %s has %zu element%s but %s has %zu sample%s "
                       "(they must be parallel)", id, option, p->text, json_array_size(arr),
                       json_array_size(arr) == 1 ? "" : "s", im->samples.text, n, n == 1 ? "" : "s");
    return ES_OK;
}

/* Room for n samples. */
static int samples_reserve(es_importer *im, size_t n)
{
    if (n <= im->cap_smp) return ES_OK;
    es_sample *p = realloc(im->smp, n * sizeof *p);
    if (p) im->smp = p;
    const char **t = realloc(im->texts, n * sizeof *t);
    if (t) im->texts = t;
    if (!p || !t) return ES_ENOMEM;
    im->cap_smp = n;
    return ES_OK;
}

static int conv_samples(es_importer *im, json_t *rec, es_item *item, es_error *err)
{
    json_t *arr = path_get(&im->samples, rec);
    if (!json_is_array(arr))
        return rec_err(im, err, ES_EFORMAT, im->samples.text, "missing, or not an array of samples");
    size_t n = json_array_size(arr);
    if (n == 0) return rec_err(im, err, ES_EFORMAT, im->samples.text, "no samples");
    int strings = 0;
    for (size_t i = 0; i < n && !strings; i++) strings = !json_is_object(json_array_get(arr, i));
    int rc = ES_OK;
    if (strings && im->has_answer) rc = check_parallel(im, rec, &im->answer, "--answer", n, item->id, err);
    if (!rc && strings && im->has_tokens) rc = check_parallel(im, rec, &im->tokens, "--tokens", n, item->id, err);
    if (rc) return rc;
    /* --max-samples: the first N, in generation order */
    if (im->o.max_samples && n > im->o.max_samples) n = im->o.max_samples;
    if (samples_reserve(im, n)) return ES_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((rc = conv_sample(im, rec, json_array_get(arr, i), i, &im->smp[i], err))) return rc;
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

/*
 * Ids must be unique in a trace file, and two records can agree on one
 * after conversion (1 and "1", or 7 and "007" with --id-digits 3): the
 * second is an error naming both records.  Every id is remembered with
 * where it was seen (a line, or an element of an array input).
 */
static int check_id(es_importer *im, const char *id, es_error *err)
{
    json_t *seen = json_object_get(im->ids, id);
    if (seen) {
        long at = (long)json_integer_value(seen);
        char where[64];
        if (at <= 0) snprintf(where, sizeof where, "an earlier record");
        else if (im->array) snprintf(where, sizeof where, "element [%ld]", at - 1);
        else snprintf(where, sizeof where, "the record at line %ld", at);
        return rec_err(im, err, ES_EFORMAT, im->has_id ? im->id.text : "",
                       "duplicate id '%s': %s has it too", id, where);
    }
    long here = im->array ? (long)im->array_pos : im->line;
    /* _nocheck: an --id-prefix from the command line need not be UTF-8 */
    return json_object_set_new_nocheck(im->ids, id, json_integer(here)) ? ES_ENOMEM : ES_OK;
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
    if (!rc) rc = check_id(im, item->id, err);
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
    json_object_clear(im->ids);
    es_dup_free(im->dup);
    im->dup = NULL;
    if (es_dup_new(&im->dup)) return es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
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
        if (rc == ES_OK && es_dup_add(im->dup, im->texts, item->n_samples))
            rc = rec_err(im, &e, ES_ENOMEM, "", "out of memory");
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

void es_importer_dup_stats(const es_importer *im, es_dup_stats *out)
{
    memset(out, 0, sizeof *out);
    if (im->dup) es_dup_get(im->dup, out);
}

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
    const char *which = (im->o.flags & ES_IMPORT_FIRST_MATCH) ? "first" : "last";
    const char *lower = (im->o.flags & ES_IMPORT_LOWER) ? ", lower-cased" : "";
    if (im->has_answer_re || im->boxed)
        snprintf(buf, sizeof buf, "%s %s%s%s%s%s", which, im->boxed ? "\\boxed{...} or \\fbox{...} (braces balanced)" : "match of ",
                 im->boxed ? "" : im->answer_re.text, im->has_answer ? " in field " : "",
                 im->has_answer ? im->answer.text : "", lower);
    else
        snprintf(buf, sizeof buf, "field %s%s", im->answer.text, lower);
    set_str(h, "answer_extraction", buf);
    if (im->o.max_samples) {
        snprintf(buf, sizeof buf, "the first %zu samples of each record", im->o.max_samples);
        set_str(h, "samples_kept", buf);
    }
    if (im->has_gold_re || im->o.gold_file || im->gold_scores) {
        snprintf(buf, sizeof buf, "%s %s%s%s%s%s", im->gold_scores ? "top-scoring key(s) of field" : "field",
                 im->gold.text, im->o.gold_file ? " of " : "", im->o.gold_file ? im->o.gold_file : "",
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
