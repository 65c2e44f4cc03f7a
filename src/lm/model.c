/* model.c - model shape, the flat weight layout, the model file.
 *
 * File format (docs/model.md), all little-endian:
 *   bytes 0..3   magic "ESLM"
 *   u32          version (1)
 *   i32 x 6      dim, hidden_dim, n_layers, n_heads, vocab_size, seq_len
 *   u64          n_params
 *   u64          FNV-1a 64 of the tensor bytes
 *   (pad to 64 bytes with zeros)
 *   f32 x n_params   tensors in es_lm_weights order
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_internal.h"
#include "open_file.h"

#define ES_LM_MAGIC "ESLM"
#define ES_LM_FILE_VERSION 1u
#define ES_LM_HEADER_BYTES 64

/* The shipped shape: see docs/model.md for why. */
void es_lm_config_default(es_lm_config *cfg)
{
    cfg->dim = 128;
    cfg->hidden_dim = 384;
    cfg->n_layers = 4;
    cfg->n_heads = 4;
    cfg->vocab_size = ES_LM_VOCAB;
    cfg->seq_len = 256;
}

/* Bounds keep every size product far from overflow and the RoPE pairs whole. */
int es_lm_config_check(const es_lm_config *c, es_error *err)
{
    if (c->dim < 2 || c->dim > 4096 || c->hidden_dim < 1 || c->hidden_dim > 16384 ||
        c->n_layers < 1 || c->n_layers > 64 || c->n_heads < 1 || c->seq_len < 2 ||
        c->seq_len > 8192 || c->vocab_size != ES_LM_VOCAB)
        return es_error_set(err, ES_EINVAL, NULL, 0, "config",
                            "unusable model shape (dim %d, hidden %d, layers %d, heads %d, "
                            "vocab %d, seq %d)", c->dim, c->hidden_dim, c->n_layers,
                            c->n_heads, c->vocab_size, c->seq_len);
    if (c->dim % c->n_heads || (c->dim / c->n_heads) % 2)
        return es_error_set(err, ES_EINVAL, NULL, 0, "config",
                            "dim %d must split into %d heads of even size", c->dim, c->n_heads);
    return ES_OK;
}

/* Must agree with es_lm_map; the loader checks the file against it. */
size_t es_lm_count_params(const es_lm_config *c)
{
    size_t d = (size_t)c->dim, h = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    return (size_t)c->vocab_size * d + L * (2 * d + 4 * d * d + 3 * d * h) + d;
}

/* The single place that knows the order of the tensors. */
void es_lm_map(const es_lm_config *c, float *p, es_lm_weights *w)
{
    size_t d = (size_t)c->dim, h = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    w->emb = p; p += (size_t)c->vocab_size * d;
    w->rms_att = p; p += L * d;
    w->wq = p; p += L * d * d;
    w->wk = p; p += L * d * d;
    w->wv = p; p += L * d * d;
    w->wo = p; p += L * d * d;
    w->rms_ffn = p; p += L * d;
    w->w1 = p; p += L * h * d;
    w->w2 = p; p += L * d * h;
    w->w3 = p; p += L * h * d;
    w->rms_final = p;
}

int es_lm_is_norm_param(const es_lm_config *c, size_t i)
{
    size_t d = (size_t)c->dim, h = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t ra = (size_t)c->vocab_size * d;       /* rms_att */
    size_t rf = ra + L * d + 4 * L * d * d;      /* rms_ffn */
    size_t fin = rf + L * d + 3 * L * h * d;     /* rms_final */
    return (i >= ra && i < ra + L * d) || (i >= rf && i < rf + L * d) || i >= fin;
}

/* One allocation for all parameters: a model is two mallocs in all. */
static int lm_alloc(const es_lm_config *cfg, es_lm **out, es_error *err)
{
    int rc = es_lm_config_check(cfg, err);
    if (rc) return rc;
    es_lm *m = calloc(1, sizeof *m);
    if (!m) return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "model");
    m->cfg = *cfg;
    m->n_params = es_lm_count_params(cfg);
    m->params = calloc(m->n_params, sizeof(float));
    if (!m->params) {
        free(m);
        return es_error_set(err, ES_ENOMEM, NULL, 0, NULL, "model weights");
    }
    es_lm_map(cfg, m->params, &m->w);
    *out = m;
    return ES_OK;
}

/* Seeded so that a training run is reproducible from its seed. */
static void fill_normal(float *p, size_t n, float std, es_rng *r)
{
    for (size_t i = 0; i < n; i++) p[i] = std * es_rng_normal(r);
}

/* GPT-2 style init: N(0, 0.02), residual projections scaled by 1/sqrt(2L)
 * so the residual stream does not grow with depth; norm gains 1. */
int es_lm_new(const es_lm_config *cfg, uint64_t seed, es_lm **out, es_error *err)
{
    es_lm *m;
    int rc = lm_alloc(cfg, &m, err);
    if (rc) return rc;
    es_rng r;
    es_rng_seed(&r, seed);
    size_t d = (size_t)cfg->dim, h = (size_t)cfg->hidden_dim, L = (size_t)cfg->n_layers;
    float s = 0.02f, sr = 0.02f / sqrtf(2.0f * (float)L);
    fill_normal(m->w.emb, (size_t)cfg->vocab_size * d, s, &r);
    fill_normal(m->w.wq, L * d * d, s, &r);
    fill_normal(m->w.wk, L * d * d, s, &r);
    fill_normal(m->w.wv, L * d * d, s, &r);
    fill_normal(m->w.wo, L * d * d, sr, &r);
    fill_normal(m->w.w1, L * h * d, s, &r);
    fill_normal(m->w.w2, L * d * h, sr, &r);
    fill_normal(m->w.w3, L * h * d, s, &r);
    for (size_t i = 0; i < L * d; i++) m->w.rms_att[i] = m->w.rms_ffn[i] = 1.0f;
    for (size_t i = 0; i < d; i++) m->w.rms_final[i] = 1.0f;
    *out = m;
    return ES_OK;
}

/* Two frees for the two allocations; NULL is a no-op. */
void es_lm_free(es_lm *m)
{
    if (!m) return;
    free(m->params);
    free(m);
}

const es_lm_config *es_lm_get_config(const es_lm *m) { return &m->cfg; }
size_t es_lm_n_params(const es_lm *m) { return m->n_params; }
float *es_lm_params(es_lm *m) { return m->params; }
const float *es_lm_params_const(const es_lm *m) { return m->params; }

/* An environment override lets tests and users point every command at
 * another model without repeating --model. */
const char *es_lm_default_path(void)
{
    const char *p = getenv("ES_MODEL");
    return p && *p ? p : "data/model.bin";
}

/* A cheap checksum: catches truncation and flipped bytes, not attacks. */
static uint64_t fnv1a(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    return h;
}

/* Explicit little-endian encoding keeps the header portable. */
static void put_u32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *b)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

/* The tensors are written as the host's floats: the header check refuses
 * big-endian hosts rather than byte-swapping megabytes. */
static int host_is_little(void)
{
    uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* The header carries the shape so a file is self-describing. */
static void header_encode(const es_lm *m, unsigned char *h)
{
    memset(h, 0, ES_LM_HEADER_BYTES);
    memcpy(h, ES_LM_MAGIC, 4);
    put_u32(h + 4, ES_LM_FILE_VERSION);
    const int32_t f[6] = {m->cfg.dim, m->cfg.hidden_dim, m->cfg.n_layers,
                          m->cfg.n_heads, m->cfg.vocab_size, m->cfg.seq_len};
    for (int i = 0; i < 6; i++) put_u32(h + 8 + 4 * i, (uint32_t)f[i]);
    put_u64(h + 32, m->n_params);
    put_u64(h + 40, fnv1a(m->params, m->n_params * sizeof(float)));
}

/* The tensor a flat parameter index falls in, and the index within it. */
static const char *tensor_of(const es_lm *m, size_t i, size_t *local)
{
    static const char *const names[] = {"emb", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn",
                                        "w1", "w2", "w3", "rms_final"};
    const es_lm_weights *w = &m->w;
    const float *starts[] = {w->emb, w->rms_att, w->wq, w->wk, w->wv, w->wo, w->rms_ffn,
                             w->w1, w->w2, w->w3, w->rms_final};
    const float *at = m->params + i;
    int k = 10;
    while (k > 0 && at < starts[k]) k--;
    *local = (size_t)(at - starts[k]);
    return names[k];
}

/* A NaN or infinite weight poisons every output it reaches: such a model is
 * never written nor read (a diverged training run is the usual cause). */
static int check_finite(const es_lm *m, const char *path, const char *what, es_error *err)
{
    for (size_t i = 0; i < m->n_params; i++) {
        if (isfinite(m->params[i])) continue;
        size_t local = 0;
        const char *name = tensor_of(m, i, &local);
        return es_error_set(err, ES_EFORMAT, path, 0, name, "%s: weight %zu of tensor %s is %g",
                            what, local, name, (double)m->params[i]);
    }
    return ES_OK;
}

/* Writes header then tensors; a short write or failed close is an error. */
int es_lm_save(const es_lm *m, const char *path, es_error *err)
{
    if (!host_is_little())
        return es_error_set(err, ES_ENOTSUP, path, 0, NULL, "big-endian host");
    int rc = check_finite(m, path, "refusing to save a model with non-finite weights", err);
    if (rc) return rc;
    unsigned char h[ES_LM_HEADER_BYTES];
    header_encode(m, h);
    FILE *fp = fopen(path, "wb");
    if (!fp) return es_error_set(err, ES_EIO, path, 0, NULL, "cannot create the model file");
    int ok = fwrite(h, 1, sizeof h, fp) == sizeof h &&
             fwrite(m->params, sizeof(float), m->n_params, fp) == m->n_params;
    ok = (fclose(fp) == 0) && ok;
    return ok ? ES_OK : es_error_set(err, ES_EIO, path, 0, NULL, "write failed");
}

/* Validates magic and version before trusting any size in the file. */
static int header_decode(const unsigned char *h, const char *path, es_lm_config *c,
                         uint64_t *n, uint64_t *sum, es_error *err)
{
    if (memcmp(h, ES_LM_MAGIC, 4))
        return es_error_set(err, ES_EFORMAT, path, 0, "magic", "not an earlystop model file");
    uint32_t v = get_u32(h + 4);
    if (v != ES_LM_FILE_VERSION)
        return es_error_set(err, ES_EFORMAT, path, 0, "version",
                            "model file version %u, this build reads %u", v, ES_LM_FILE_VERSION);
    c->dim = (int32_t)get_u32(h + 8);
    c->hidden_dim = (int32_t)get_u32(h + 12);
    c->n_layers = (int32_t)get_u32(h + 16);
    c->n_heads = (int32_t)get_u32(h + 20);
    c->vocab_size = (int32_t)get_u32(h + 24);
    c->seq_len = (int32_t)get_u32(h + 28);
    *n = get_u64(h + 32);
    *sum = get_u64(h + 40);
    return ES_OK;
}

/* Every check names the field at fault, so a bad file is diagnosable. */
int es_lm_load(const char *path, es_lm **out, es_error *err)
{
    if (!host_is_little())
        return es_error_set(err, ES_ENOTSUP, path, 0, NULL, "big-endian host");
    FILE *fp;
    int orc = es_open_input(path, "a model file", &fp, err);
    if (orc) return orc;
    unsigned char h[ES_LM_HEADER_BYTES];
    es_lm_config c;
    uint64_t n = 0, sum = 0;
    int rc = fread(h, 1, sizeof h, fp) == sizeof h
                 ? header_decode(h, path, &c, &n, &sum, err)
                 : es_error_set(err, ES_EFORMAT, path, 0, "header", "file too short");
    es_lm *m = NULL;
    if (!rc && (rc = lm_alloc(&c, &m, err)) != 0 && err)
        snprintf(err->file, sizeof err->file, "%s", path);
    if (!rc && n != m->n_params)
        rc = es_error_set(err, ES_EFORMAT, path, 0, "n_params",
                          "header says %llu parameters, the shape needs %zu",
                          (unsigned long long)n, m->n_params);
    if (!rc && fread(m->params, sizeof(float), m->n_params, fp) != m->n_params)
        rc = es_error_set(err, ES_EFORMAT, path, 0, "tensors", "file truncated");
    if (!rc && fgetc(fp) != EOF)
        rc = es_error_set(err, ES_EFORMAT, path, 0, "tensors", "trailing bytes after the tensors");
    if (!rc && fnv1a(m->params, m->n_params * sizeof(float)) != sum)
        rc = es_error_set(err, ES_EFORMAT, path, 0, "checksum", "tensor checksum mismatch");
    if (!rc) rc = check_finite(m, path, "not a usable model", err);
    fclose(fp);
    if (rc) { es_lm_free(m); return rc; }
    *out = m;
    return ES_OK;
}

/* Computed once per state/trainer, shared by every position. */
float *es_lm_rope_table(const es_lm_config *c)
{
    int hs = c->dim / c->n_heads, half = hs / 2;
    float *t = malloc((size_t)c->seq_len * (size_t)hs * sizeof(float));
    if (!t) return NULL;
    for (int pos = 0; pos < c->seq_len; pos++)
        for (int j = 0; j < half; j++) {
            float freq = 1.0f / powf(10000.0f, (float)(2 * j) / (float)hs);
            float v = (float)pos * freq;
            t[(size_t)pos * hs + j] = cosf(v);
            t[(size_t)pos * hs + half + j] = sinf(v);
        }
    return t;
}
