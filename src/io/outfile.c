/*
 * outfile.c - write an output file so that a failed run never costs the user
 * data: what was at the name before survives byte for byte until the new
 * content is complete, and nothing this run did not create is unlinked.
 *
 * A regular file (or a name that does not exist yet) is written to a
 * temporary file beside it (same directory, so the final rename is atomic)
 * and renamed over the name on commit.  A symlink is followed: its target is
 * replaced and the link stays a link.  What is not a regular file
 * (/dev/stdout, /dev/null, /dev/full, a pipe, a terminal) cannot be renamed
 * over, so it is opened without O_TRUNC and written directly.  "-" is stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "earlystop_io.h"

struct es_outfile {
    FILE *fp;
    int direct;        /* written in place (stdout, device, pipe): no rename */
    int is_stdout;     /* "-": flushed, never closed */
    char *name;        /* what the user gave, for messages */
    char *target;      /* the name after following symlinks: renamed over */
    char *tmp;         /* the temporary file this run created, else NULL */
    mode_t mode;       /* the replaced file's permission bits, or 0 */
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* dir part of p ("." when none), malloc'd. */
static char *dir_of(const char *p)
{
    const char *slash = strrchr(p, '/');
    if (!slash) return dup_str(".");
    if (slash == p) return dup_str("/");
    size_t n = (size_t)(slash - p);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* Follow symlinks from `path` to the name a rename must replace (which may
 * not exist yet: a dangling link creates its target).  NULL on a loop or
 * out of memory, with errno set. */
static char *follow_links(const char *path)
{
    char *cur = dup_str(path);
    for (int hops = 0; cur && hops < 40; hops++) {
        struct stat sb;
        if (lstat(cur, &sb) || !S_ISLNK(sb.st_mode)) return cur;
        char link[PATH_MAX];
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0) { free(cur); return NULL; }
        link[n] = '\0';
        char *next;
        if (link[0] == '/') {
            next = dup_str(link);
        } else {
            char *d = dir_of(cur);
            size_t len = d ? strlen(d) + 1 + (size_t)n + 1 : 0;
            next = d ? malloc(len) : NULL;
            if (next) snprintf(next, len, "%s/%s", d, link);
            free(d);
        }
        free(cur);
        cur = next;
    }
    if (cur) { free(cur); errno = ELOOP; }
    return NULL;
}

/* The run's inputs must not be its output: same name, or same file. */
static int check_inputs(const char *path, const struct stat *out_sb, int out_exists,
                        const char *const *inputs, es_error *err)
{
    for (size_t i = 0; inputs && inputs[i]; i++) {
        const char *in = inputs[i];
        struct stat sb;
        int same = !strcmp(in, path);
        if (!same && out_exists) {
            int ok = strcmp(in, "-") ? stat(in, &sb) : fstat(STDIN_FILENO, &sb);
            same = ok == 0 && sb.st_dev == out_sb->st_dev && sb.st_ino == out_sb->st_ino;
        }
        if (same)
            return es_error_set(err, ES_EINVAL, path, 0, "",
                                "is also an input of this run (%s): refusing to overwrite it; "
                                "write the output elsewhere, then move it",
                                strcmp(in, "-") ? in : "standard input");
    }
    return ES_OK;
}

/* Create a fresh temporary file beside target, with the permissions a new
 * file would get (0666 less the umask), or those of the file it replaces. */
static int make_tmp(es_outfile *of, es_error *err)
{
    char *dir = dir_of(of->target);
    const char *base = strrchr(of->target, '/');
    base = base ? base + 1 : of->target;
    size_t cap = (dir ? strlen(dir) : 0) + strlen(base) + 64;
    of->tmp = dir ? malloc(cap) : NULL;
    if (!of->tmp) {
        free(dir);
        return es_error_set(err, ES_ENOMEM, of->name, 0, "", "out of memory");
    }
    /* a name no one else uses: pid, clock and a counter, O_EXCL to be sure */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 20) ^ (uint64_t)(uintptr_t)of;
    int fd = -1, e = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(of->tmp, cap, "%s/.%s.earlystop-%06llx", dir, base, (unsigned long long)(x >> 40));
        fd = open(of->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        e = errno;
        if (fd < 0 && e != EEXIST) break;
    }
    if (fd < 0) {
        es_error_set(err, ES_EIO, of->name, 0, "", "cannot create a temporary file in %s: %s", dir, strerror(e));
        free(dir);
        free(of->tmp);
        of->tmp = NULL;
        return ES_EIO;
    }
    free(dir);
    if (of->mode) (void)fchmod(fd, of->mode);
    of->fp = fdopen(fd, "wb");
    if (!of->fp) {
        close(fd);
        unlink(of->tmp);
        free(of->tmp);
        of->tmp = NULL;
        return es_error_set(err, ES_ENOMEM, of->name, 0, "", "out of memory");
    }
    return ES_OK;
}

int es_outfile_open(const char *path, const char *const *inputs, es_outfile **out, es_error *err)
{
    *out = NULL;
    if (!path || !*path) return es_error_set(err, ES_EINVAL, "", 0, "", "empty output file name");
    es_outfile *of = calloc(1, sizeof *of);
    if (!of || !(of->name = dup_str(path))) {
        free(of);
        return es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
    }
    if (!strcmp(path, "-")) {
        free(of->name);
        if (!(of->name = dup_str("standard output"))) {
            free(of);
            return es_error_set(err, ES_ENOMEM, path, 0, "", "out of memory");
        }
        of->fp = stdout;
        of->direct = of->is_stdout = 1;
        *out = of;
        return ES_OK;
    }
    int rc = ES_OK;
    if (!(of->target = follow_links(path))) {
        rc = es_error_set(err, errno == ENOMEM ? ES_ENOMEM : ES_EIO, path, 0, "", "cannot follow the link: %s",
                          strerror(errno));
        goto fail;
    }
    struct stat sb;
    int exists = stat(of->target, &sb) == 0;
    if (!exists && errno != ENOENT) {
        rc = es_error_set(err, ES_EIO, path, 0, "", "cannot write: %s", strerror(errno));
        goto fail;
    }
    if ((rc = check_inputs(path, &sb, exists, inputs, err))) goto fail;
    if (exists && S_ISDIR(sb.st_mode)) {
        rc = es_error_set(err, ES_EIO, path, 0, "", "is a directory");
        goto fail;
    }
    if (exists && !S_ISREG(sb.st_mode)) {
        /* a device or a pipe: written in place; O_TRUNC means nothing there */
        int fd = open(of->target, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 || !(of->fp = fdopen(fd, "wb"))) {
            int e = errno;
            if (fd >= 0) close(fd);
            rc = es_error_set(err, ES_EIO, path, 0, "", "cannot open for writing: %s", strerror(e));
            goto fail;
        }
        of->direct = 1;
        *out = of;
        return ES_OK;
    }
    /* a file the user could not write must stay refused, rename or not */
    if (exists && access(of->target, W_OK)) {
        rc = es_error_set(err, ES_EIO, path, 0, "", "cannot write: %s", strerror(errno));
        goto fail;
    }
    if (exists) of->mode = sb.st_mode & 07777;
    if ((rc = make_tmp(of, err))) goto fail;
    *out = of;
    return ES_OK;
fail:
    es_outfile_abort(of);
    return rc;
}

FILE *es_outfile_fp(es_outfile *of) { return of->fp; }
const char *es_outfile_name(const es_outfile *of) { return of->name; }
const char *es_outfile_write_path(const es_outfile *of)
{
    return of->tmp ? of->tmp : of->is_stdout ? "/dev/stdout" : of->target;
}

/* Flush, and for a file fsync, before anyone trusts the content; the first
 * failure names the output and says why. */
static int finish_writes(es_outfile *of, es_error *err)
{
    int bad = 0, e = 0;
    errno = 0;
    if (fflush(of->fp)) { bad = 1; e = errno; }
    if (!bad && ferror(of->fp)) { bad = 1; e = errno; }
    if (!bad && !of->direct && fsync(fileno(of->fp))) { bad = 1; e = errno; }
    /* the error is reported here, once: stdout's own check at exit (the
     * CLI's) must not say it again */
    if (bad && of->is_stdout) clearerr(of->fp);
    if (bad)
        return es_error_set(err, ES_EIO, of->name, 0, "", "write failed: %s",
                            e ? strerror(e) : "I/O error");
    return ES_OK;
}

/* Close (never stdout); a failed close is a failed write (NFS, quotas). */
static int close_fp(es_outfile *of, es_error *err)
{
    FILE *fp = of->fp;
    of->fp = NULL;
    if (!fp || of->is_stdout) return ES_OK;
    if (fclose(fp))
        return es_error_set(err, ES_EIO, of->name, 0, "", "write failed: %s", strerror(errno));
    return ES_OK;
}

int es_outfile_checkpoint(es_outfile *of, es_error *err)
{
    int rc = finish_writes(of, err);
    if (rc || of->direct) return rc;
    if ((rc = close_fp(of, err))) return rc;
    if (rename(of->tmp, of->target))
        return es_error_set(err, ES_EIO, of->name, 0, "", "cannot replace: %s", strerror(errno));
    free(of->tmp);
    of->tmp = NULL;
    /* the next content goes to a new temporary, keeping the checkpoint */
    struct stat sb;
    if (stat(of->target, &sb) == 0) of->mode = sb.st_mode & 07777;
    return make_tmp(of, err);
}

int es_outfile_commit(es_outfile *of, es_error *err)
{
    if (!of) return ES_OK;
    int rc = of->fp ? finish_writes(of, err) : ES_OK;
    int crc = close_fp(of, rc ? NULL : err);
    if (!rc) rc = crc;
    if (!rc && of->tmp) {
        if (rename(of->tmp, of->target))
            rc = es_error_set(err, ES_EIO, of->name, 0, "", "cannot replace: %s", strerror(errno));
        else {
            free(of->tmp);
            of->tmp = NULL;
        }
    }
    es_outfile_abort(of); /* removes the temporary if the rename did not happen */
    return rc;
}

void es_outfile_abort(es_outfile *of)
{
    if (!of) return;
    close_fp(of, NULL);
    if (of->tmp) unlink(of->tmp); /* ours: made with O_EXCL by this run */
    free(of->tmp);
    free(of->target);
    free(of->name);
    free(of);
}
