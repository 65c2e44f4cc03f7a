/*
 * data.c - the items a tuner sees: trace sets pooled item by item.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tune_int.h"

int es_tune_data_new(es_tune_data **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? ES_OK : ES_ENOMEM;
}

void es_tune_data_free(es_tune_data *d)
{
    if (!d) return;
    free(d->files);
    free(d->items);
    free(d);
}

int es_tune_data_add(es_tune_data *d, const es_traceset *ts, const char *name)
{
    return es_tune_data_add_items(d, ts, name, NULL, es_traceset_n_items(ts));
}

int es_tune_data_add_items(es_tune_data *d, const es_traceset *ts, const char *name, const uint32_t *items, size_t n)
{
    size_t m = es_traceset_n_items(ts);
    if (!items && n != m) return ES_EINVAL;
    for (size_t i = 0; items && i < n; i++)
        if (items[i] >= m) return ES_EINVAL;
    if (d->n_files == d->cap_files) {
        size_t c = d->cap_files ? 2 * d->cap_files : 8;
        tn_file *f = realloc(d->files, c * sizeof *f);
        if (!f) return ES_ENOMEM;
        d->files = f;
        d->cap_files = c;
    }
    if (d->n_items + n > d->cap_items) {
        size_t c = d->cap_items ? d->cap_items : 1024;
        while (c < d->n_items + n) c *= 2;
        tn_ref *r = realloc(d->items, c * sizeof *r);
        if (!r) return ES_ENOMEM;
        d->items = r;
        d->cap_items = c;
    }
    tn_file *f = &d->files[d->n_files];
    f->ts = ts;
    snprintf(f->name, sizeof f->name, "%s", name ? name : "");
    for (size_t i = 0; i < n; i++)
        d->items[d->n_items + i] = (tn_ref){(uint32_t)d->n_files, items ? items[i] : (uint32_t)i};
    d->n_items += n;
    d->n_files++;
    return ES_OK;
}

/* The items `items` of d (indices into d's pooled items) as a new data set
 * over the same files: what the tuner measured its fronts on. */
int tn_data_subset(const es_tune_data *d, const uint32_t *items, size_t n, es_tune_data **out)
{
    es_tune_data *s = calloc(1, sizeof *s);
    if (!s) return ES_ENOMEM;
    s->files = malloc((d->n_files + 1) * sizeof *s->files);
    s->items = malloc((n + 1) * sizeof *s->items);
    if (!s->files || !s->items) {
        es_tune_data_free(s);
        return ES_ENOMEM;
    }
    if (d->n_files) memcpy(s->files, d->files, d->n_files * sizeof *s->files);
    s->n_files = s->cap_files = d->n_files;
    for (size_t i = 0; i < n; i++) s->items[i] = d->items[items[i]];
    s->n_items = s->cap_items = n;
    *out = s;
    return ES_OK;
}

size_t es_tune_data_n_items(const es_tune_data *d) { return d->n_items; }
size_t es_tune_data_n_files(const es_tune_data *d) { return d->n_files; }

void tn_view(const es_tune_data *d, size_t item, es_item_view *v)
{
    const tn_ref *r = &d->items[item];
    es_traceset_item(d->files[r->file].ts, r->index, v);
}

int es_tune_data_item(const es_tune_data *d, size_t i, es_item_view *v, size_t *file, uint32_t *index)
{
    if (i >= d->n_items) return ES_ERANGE;
    if (v) tn_view(d, i, v);
    if (file) *file = d->items[i].file;
    if (index) *index = d->items[i].index;
    return ES_OK;
}

const es_traceset *es_tune_data_file(const es_tune_data *d, size_t f, const char **name)
{
    if (f >= d->n_files) return NULL;
    if (name) *name = d->files[f].name;
    return d->files[f].ts;
}
