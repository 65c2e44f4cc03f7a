/*
 * earlystop_io.h - the I/O layer of earlystop (libearlystop-io): reading and
 * writing trace format v1 (JSON Lines, via jansson), importing other people's
 * JSON (jansson + pcre2), loading policies from JSON files.
 *
 * Kept apart from the core (earlystop.h) so that an inference engine can embed
 * the core with libc and libm alone.
 */
#ifndef EARLYSTOP_IO_H
#define EARLYSTOP_IO_H

#include <stdio.h>
#include "earlystop_replay.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------- trace reader */

/*
 * Streaming reader: one item at a time, so a file of millions of samples
 * never has to fit in memory.  The es_item it returns, and every string in
 * it, stays valid until the next es_trace_reader_next or _free.
 */
typedef struct es_trace_reader es_trace_reader;

enum {
    ES_READ_NO_TEXT = 1,   /* drop samples[].text and question (saves memory) */
    ES_READ_SKIP_BAD = 2   /* skip items that break the format, count them */
};

/* Longest line the reader accepts by default (a real trace line is a few
 * MB at most; /dev/zero or a binary file would otherwise fill memory). */
#define ES_READ_MAX_LINE ((uint64_t)256 << 20)
/* How many skipped items' errors a reader keeps (the first ones). */
enum { ES_READ_REASONS = 5 };

typedef struct es_read_opts {
    unsigned flags;     /* ES_READ_* */
    uint64_t max_line;  /* longest line in bytes; 0 = ES_READ_MAX_LINE.  Longer: ES_ERANGE */
    int threads;        /* parsing threads, the caller's included: 1 = none
                           started; 0 = one per online core, at most 4
                           (the caller's thread is the limit beyond that;
                           at most 64 are started).  Helpers wait
                           passively and the caller never waits for them, so
                           more threads are never much slower than one. */
    /* es_traceset_load_opts only: called with every item added to the set,
     * texts included even under ES_READ_NO_TEXT (the set still keeps none),
     * so a caller can look at what the set drops (e.g. duplicate texts).
     * A non-zero return ends the load with that code. */
    int (*on_item)(void *ctx, const es_item *item);
    void *on_item_ctx;
} es_read_opts;

/* Defaults: no flags, ES_READ_MAX_LINE, threads 0. */
ES_API void es_read_opts_init(es_read_opts *o);

/* Open `path` ("-" = stdin) and read its header line.  Errors name the file.
 * Compressed input (gzip, zstd, xz, bzip2, zip) is refused by name; a UTF-8
 * byte order mark before the header is skipped.  opts NULL = defaults. */
ES_API int es_trace_reader_open_opts(const char *path, const es_read_opts *opts, es_trace_reader **out,
                              es_error *err);
/* es_trace_reader_open_opts with default options and these flags. */
ES_API int es_trace_reader_open(const char *path, unsigned flags, es_trace_reader **out, es_error *err);
ES_API void es_trace_reader_free(es_trace_reader *r);

/* Next item into *item.  Returns ES_OK, ES_EOF at the end, or an error whose
 * es_error names file, line and field.  With ES_READ_SKIP_BAD, bad items are
 * skipped and counted (es_trace_reader_skipped) and never returned. */
ES_API int es_trace_reader_next(es_trace_reader *r, es_item *item, es_error *err);

/* The header line as compact JSON text (provenance fields included). */
ES_API const char *es_trace_reader_header(const es_trace_reader *r);
ES_API size_t es_trace_reader_skipped(const es_trace_reader *r);
/* Last skipped item's error (valid when skipped > 0). */
ES_API const es_error *es_trace_reader_last_skip(const es_trace_reader *r);
/* Error of skipped item i (0 = the first), for i < ES_READ_REASONS; NULL
 * past what was kept or skipped. */
ES_API const es_error *es_trace_reader_skip_reason(const es_trace_reader *r, size_t i);
ES_API long es_trace_reader_line(const es_trace_reader *r);
/* Bytes consumed so far (for progress and MB/s). */
ES_API uint64_t es_trace_reader_bytes(const es_trace_reader *r);

/* Read a whole file into a traceset (ES_KEEP_TEXT unless ES_READ_NO_TEXT). */
ES_API int es_traceset_load(const char *path, unsigned read_flags, es_traceset **out,
                     size_t *skipped, es_error *err);

/* What a load skipped (ES_READ_SKIP_BAD): how many items, and the errors of
 * the first ES_READ_REASONS in file order (bad lines and duplicate ids). */
typedef struct es_read_report {
    size_t skipped;
    size_t n_reasons;
    es_error reasons[ES_READ_REASONS];
} es_read_report;

/* es_traceset_load with options (NULL = defaults); rep may be NULL. */
ES_API int es_traceset_load_opts(const char *path, const es_read_opts *opts, es_traceset **out,
                          es_read_report *rep, es_error *err);

/* ---------------------------------------------------------- policy files */

/* Read a policy file ({"spec": "..."} or {"rules": [{"name": ..., key: value}]})
 * into a spec string. */
ES_API int es_policy_spec_load(const char *path, char *buf, size_t cap, es_error *err);

/* es_policy_new, also taking "@file.json" for a policy file or a stopper
 * file (below). */
ES_API int es_policy_new_any(const char *spec, es_policy **out, es_error *err);

/* ------------------------------------------------------ controller state */

/*
 * The online controller's state (es_controller in earlystop.h) as a JSON
 * file, so that a restart does not forget what it learned:
 *   {"format": "earlystop-controller", "version": 1, "param": "ac-beta.threshold",
 *    "state": {"candidates": [...], "unit": [...], "position": [...], ...}}
 * save writes through es_outfile (a failed save leaves the old file); load
 * sets every field or, on any error (another parameter, other candidates,
 * costs in another unit, a malformed file), none.
 */
ES_API int es_controller_save(es_controller *c, const char *path, es_error *err);
ES_API int es_controller_load(es_controller *c, const char *path, es_error *err);
/* --------------------------------------------------------- stopper files */

/* A learned stopper's file (docs/learning.md: "format": "earlystop-stopper"):
 * its weights and the spec it stands for ("learned" unless the file says;
 * spec may be NULL).  Errors name the field. */
ES_API int es_stopper_load(const char *path, es_stopper **out, char *spec, size_t spec_cap, es_error *err);
/* Write m with its spec and provenance fields (a JSON object text, or
 * NULL), atomically (es_outfile); numbers to 17 digits, so that it reads
 * back to the same bits. */
ES_API int es_stopper_save(const es_stopper *m, const char *path, const char *spec, const char *provenance_json,
                           es_error *err);
/* The same onto an open stream (an es_outfile's). */
ES_API int es_stopper_write(const es_stopper *m, FILE *fp, const char *spec, const char *provenance_json,
                            es_error *err);

/* ----------------------------------------------------------- trace writer */

/*
 * Writer: the header, then one item per line, keys in a fixed order, so the
 * same items always produce the same bytes (read -> write is a fixed point).
 */
typedef struct es_trace_writer es_trace_writer;

/* header_json: a JSON object text with provenance fields ("format" and
 * "version" are set by the writer); NULL for none. */
ES_API int es_trace_writer_open(FILE *fp, const char *header_json, es_trace_writer **out, es_error *err);
ES_API int es_trace_writer_write(es_trace_writer *w, const es_item *item, es_error *err);
/* Flushes; does not close fp. */
ES_API int es_trace_writer_free(es_trace_writer *w);

/*
 * Probe cues from a sample's text (docs/trace-format.md, "Probe cues"), for
 * probes made at paragraph ends (the text proxy of the *_think files): the
 * reasoning is the text before "</think>" (all of it when there is none),
 * its paragraphs are split at blank lines, and the n_probes probes are the
 * last n_probes paragraphs' ends (probes begin once an answer has been
 * written).  cues[j] = es_text_cues of probe j's paragraph, with ES_CUE_END
 * on the last probe when a "</think>" closes the reasoning right after it.
 * ES_EFORMAT (cues untouched) when there are more probes than paragraphs:
 * the probes are not paragraph ends.
 */
ES_API int es_paragraph_cues(const char *text, size_t n_probes, uint32_t *cues);

/* The header note ("probe_cues") of a trace file whose paragraph probes
 * carry their cues: `earlystop cues` sets it, `record --probe-at
 * paragraphs` writes it (so that marking a recorded file again changes
 * nothing). */
#define ES_PROBE_CUES_NOTE "earlystop cues: the paragraph at each probe (conclude, check, end)"

/* ----------------------------------------------------------- output files */

/*
 * es_outfile: an output file that a failed run cannot damage.  A regular
 * file (or a new name) is written to a temporary file beside it and renamed
 * over the name on commit; a symlink is followed (its target is replaced,
 * the link stays).  A name that is not a regular file (/dev/stdout,
 * /dev/null, a pipe) is written directly; "-" is stdout.  Nothing the run did
 * not create is ever unlinked, so an existing output survives a failed run
 * byte for byte.  Hard links to the old file keep the old content.
 *
 *   es_outfile *of;
 *   if (es_outfile_open(path, inputs, &of, &err)) ...   // before the work
 *   ... write to es_outfile_fp(of) ...
 *   rc = ok ? es_outfile_commit(of, &err) : (es_outfile_abort(of), rc);
 */
typedef struct es_outfile es_outfile;

/* Open `path` for writing.  Call it before the work, so that a bad output
 * (missing directory, not writable, a directory) fails before any input is
 * read.  inputs: NULL-terminated list of the run's input files ("-" =
 * stdin), may be NULL; an output that is one of them (same name, or same
 * device and inode) is refused with ES_EINVAL.  Errors name the output. */
ES_API int es_outfile_open(const char *path, const char *const *inputs, es_outfile **out, es_error *err);
ES_API FILE *es_outfile_fp(es_outfile *of);
/* The name as given (for messages). */
ES_API const char *es_outfile_name(const es_outfile *of);
/* Where a writer that opens files by name (e.g. es_lm_save) must write: the
 * temporary file, or the name itself when written directly. */
ES_API const char *es_outfile_write_path(const es_outfile *of);
/* Flush, check every write, fsync and close, then rename over the name.
 * On failure the error names the output, the temporary is removed and the
 * old file is left as it was.  Frees of (NULL is fine) either way. */
ES_API int es_outfile_commit(es_outfile *of, es_error *err);
/* For a writer that rewrites the whole file each time (a model checkpoint):
 * publish what was written so far as in commit, then continue on a fresh
 * temporary file; es_outfile_fp and _write_path may change. */
ES_API int es_outfile_checkpoint(es_outfile *of, es_error *err);
/* Close and remove the temporary file; the name keeps what it held.  Frees
 * of (NULL is fine). */
ES_API void es_outfile_abort(es_outfile *of);

/* ================================================================= import
 * (section owned by src/io/import.c)
 *
 * es_importer turns other people's JSON / JSON Lines records into trace v1
 * items.  Field paths name values inside a record: `a`, `a.b`, `a[2].b`
 * (a backslash escapes `.`, `[` or `\` inside a key).  The samples path may
 * end in `[].PATH` (e.g. `samples[].text`), short for --sample-text PATH.
 * Regular expressions are PCRE2; the answer is capture group 1 (the whole
 * match when the pattern has no group) of the LAST match (the first with
 * ES_IMPORT_FIRST_MATCH); no match = null.  Named extractors ("boxed": the
 * argument of the last \boxed{...} / \fbox{...}, braces balanced) stand in
 * for a regex.  Records are checked as they stream: parallel arrays of the
 * wrong length and ids seen before are errors naming the record.
 * See docs/import.md.
 */
typedef struct es_import_opts {
    const char *id_path;          /* NULL: ids generated from the item index */
    const char *id_prefix;        /* prepended to ids; NULL: "item-" for generated ids, "" else */
    int id_digits;                /* zero-pad integer ids / indexes to this width;
                                     -1: 4 for generated ids, none for ids from a field */
    const char *question_path;    /* NULL: no question; absent in a record: none */
    const char *gold_path;        /* gold in the record, or in the gold file's record; this or: */
    const char *gold_scores_path; /* gold as an object of scores ({"a": 1, "b": 0}): the
                                     top-scoring key(s); same places as gold_path */
    const char *gold_regex;       /* NULL: gold taken as is */
    const char *gold_file;        /* NULL: gold in the record itself; else joined by id
                                     (JSON Lines, an array, or a trace v1 file) */
    const char *gold_key;         /* key path in gold_file's records; NULL = "id" */
    const char *join_path;        /* key path in the input records; NULL = id_path or "id" */
    const char *samples_path;     /* required: array of strings or of objects */
    const char *sample_text_path; /* text inside object samples; NULL = "text" */
    const char *answer_path;      /* NULL: answer extracted from the text with answer_regex */
    const char *answer_regex;     /* applied to the answer field, or else to the text */
    const char *answer_extract;   /* named extractor instead of a regex: "boxed"; NULL none */
    size_t max_samples;           /* keep the first N samples of each record; 0 = all */
    const char *tokens_path;      /* NULL: estimated from the text (es_estimate_tokens) */
    const char *task;             /* NULL: input file name without extension */
    es_answer_type answer_type;
    unsigned flags;               /* ES_IMPORT_* */
    const char *model;            /* header provenance, NULL to leave out */
    const char *source;           /* NULL: the input path */
} es_import_opts;

enum {
    ES_IMPORT_LOWER = 1,     /* ASCII-lower-case the answers and the gold */
    ES_IMPORT_SKIP_BAD = 2,  /* skip records that fail, count them */
    ES_IMPORT_NO_TEXT = 4,   /* leave samples[].text and question out of the items */
    ES_IMPORT_FIRST_MATCH = 8 /* the first match of the regex / extractor, not the last */
};

/* Zero everything, answer type text, id_digits -1. */
ES_API void es_import_opts_init(es_import_opts *o);

typedef struct es_importer es_importer;

/* Check the options, compile the regexes, load and index the gold file.
 * Errors name the option (field "--samples", ...) or the gold file's line. */
ES_API int es_importer_new(const es_import_opts *opts, es_importer **out, es_error *err);
ES_API void es_importer_free(es_importer *im);

/* Attach the input: JSON Lines, or one top-level JSON array ("-" = stdin). */
ES_API int es_importer_open(es_importer *im, const char *path, es_error *err);

/* Next item (ES_OK), ES_EOF at the end, or an error naming file, line and
 * field.  The item and its strings stay valid until the next call. */
ES_API int es_importer_next(es_importer *im, es_item *item, es_error *err);

/* Convert one record (JSON object text of len bytes) as if read at the
 * current position; used by _next, tests and the fuzzer.  Its id is
 * remembered: a later record with the same id fails (ES_EFORMAT). */
ES_API int es_importer_record(es_importer *im, const char *json, size_t len, es_item *item,
                       es_error *err);

ES_API size_t es_importer_skipped(const es_importer *im);
/* Duplicate sample texts of the items es_importer_next handed out (texts
 * are hashed whether or not ES_IMPORT_NO_TEXT drops them). */
ES_API void es_importer_dup_stats(const es_importer *im, es_dup_stats *out);
ES_API const es_error *es_importer_last_skip(const es_importer *im);

/* Header JSON text for es_trace_writer_open (provenance, extraction, token
 * counts); owned by the importer.  NULL when out of memory. */
ES_API const char *es_importer_header(es_importer *im);

/* Estimated cl100k_base token count of text[0..n) (see docs/import.md). */
ES_API uint32_t es_estimate_tokens(const char *text, size_t n);
/* ============================================================ end import */

#ifdef __cplusplus
}
#endif
#endif /* EARLYSTOP_IO_H */
