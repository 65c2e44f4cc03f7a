/*
 * interner.c - answers -> ids 0,1,2,... by canonical key, for live use.
 *
 * Everything lives in one block allocated by es_interner_new: the handle, an
 * open-addressing hash table (linear probing, at most half full) of ids, the
 * per-id key offsets and hashes, a key arena and a scratch buffer.  Interning
 * normalises into the scratch buffer, looks the key up and, when it is new,
 * copies it into the arena: no allocation, and a known answer is found even
 * when the interner is full.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "earlystop.h"

/* Ids are int32_t and the table is twice the capacity: keep both in range. */
#define INTERNER_MAX_ANSWERS (1u << 28)

struct es_interner {
    es_answer_type type;
    uint32_t max_answers;   /* ids available, the null answer's included */
    uint32_t count;         /* ids handed out */
    size_t mask;            /* hash table size - 1 (a power of two) */
    size_t *key_off;        /* [max_answers] offset of each key in arena */
    uint32_t *key_hash;     /* [max_answers] */
    int32_t *slots;         /* [mask + 1] id, or -1 when empty */
    char *arena;            /* keys, NUL-terminated, back to back */
    size_t arena_used;      /* bytes of arena used, NULs included */
    size_t key_bytes;       /* budget for key bytes, NULs not counted */
    size_t key_bytes_used;
    char *scratch;          /* room for the longest key that can be stored */
    size_t scratch_cap;
};

/* FNV-1a: short keys, no need for more. */
static uint32_t key_hash(const char *k, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h;
}

/* Smallest power of two >= 2 * max_answers: load factor at most 1/2. */
static size_t table_size(uint32_t max_answers)
{
    size_t size = 2;
    while (size < 2 * (size_t)max_answers) size <<= 1;
    return size;
}

/* a + b into *sum; 0 when it overflows size_t. */
static int add_size(size_t a, size_t b, size_t *sum)
{
    *sum = a + b;
    return *sum >= a;
}

/* Total bytes of the one block, or 0 when the sizes overflow size_t. */
static size_t block_size(uint32_t max_answers, size_t tbl, size_t max_key_bytes)
{
    size_t fixed = sizeof(es_interner) + max_answers * (sizeof(size_t) + sizeof(uint32_t)) +
                   tbl * sizeof(int32_t);
    size_t arena, keys, total;
    /* per answer: offset, hash and (tbl < 4 * max_answers) four slots */
    if (sizeof(size_t) + sizeof(uint32_t) + 4 * sizeof(int32_t) > SIZE_MAX / max_answers)
        return 0;
    if (!add_size(max_key_bytes, max_answers, &arena) ||   /* keys plus their NULs */
        !add_size(max_key_bytes, 1, &keys) ||              /* scratch */
        !add_size(fixed, arena, &total) || !add_size(total, keys, &total))
        return 0;
    return total;
}

/* Carve the block: the handle, then arrays from widest to narrowest
 * alignment, then the bytes of arena and scratch. */
static void carve(es_interner *in, size_t tbl, size_t max_key_bytes)
{
    char *p = (char *)(in + 1);
    in->key_off = (size_t *)(void *)p;
    p += in->max_answers * sizeof(size_t);
    in->key_hash = (uint32_t *)(void *)p;
    p += in->max_answers * sizeof(uint32_t);
    in->slots = (int32_t *)(void *)p;
    p += tbl * sizeof(int32_t);
    in->arena = p;
    in->key_bytes = max_key_bytes;
    in->scratch = p + max_key_bytes + in->max_answers;
    in->scratch_cap = max_key_bytes + 1;
    in->mask = tbl - 1;
}

/* max_answers counts distinct answers, the null answer included;
 * max_key_bytes bounds the total length of their keys (NULs not counted),
 * so no single key can be longer either. */
int es_interner_new(es_answer_type t, uint32_t max_answers, size_t max_key_bytes,
                    es_interner **out)
{
    if (!out) return ES_EINVAL;
    *out = NULL;
    if ((unsigned)t > (unsigned)ES_ANSWER_MATH || max_answers == 0) return ES_EINVAL;
    if (max_answers > INTERNER_MAX_ANSWERS) return ES_ERANGE;
    size_t tbl = table_size(max_answers);
    size_t total = block_size(max_answers, tbl, max_key_bytes);
    if (total == 0) return ES_ERANGE;
    es_interner *in = malloc(total);
    if (!in) return ES_ENOMEM;
    memset(in, 0, sizeof *in);
    in->type = t;
    in->max_answers = max_answers;
    carve(in, tbl, max_key_bytes);
    es_interner_reset(in);
    *out = in;
    return ES_OK;
}

void es_interner_free(es_interner *in)
{
    free(in);
}

/* O(table size): called once per question, not per answer.  Id 0 is the
 * null answer's, always (ES_NULL_ANSWER), so the first real answer gets 1. */
void es_interner_reset(es_interner *in)
{
    if (!in) return;
    in->count = 1;
    in->arena_used = 0;
    in->key_bytes_used = 0;
    for (size_t i = 0; i <= in->mask; i++) in->slots[i] = -1;
}

/* Slot holding key k, or the empty slot where it belongs. */
static size_t find_slot(const es_interner *in, const char *k, uint32_t h)
{
    size_t i = h & in->mask;
    for (;;) {
        int32_t id = in->slots[i];
        if (id < 0) return i;
        if (in->key_hash[id] == h && !strcmp(in->arena + in->key_off[id], k)) return i;
        i = (i + 1) & in->mask;
    }
}

/* Store the key in scratch (len bytes) under a new id at slot. */
static int32_t add_key(es_interner *in, size_t slot, size_t len, uint32_t h)
{
    if (in->count >= in->max_answers || in->key_bytes - in->key_bytes_used < len)
        return ES_ERANGE;
    int32_t id = (int32_t)in->count++;
    memcpy(in->arena + in->arena_used, in->scratch, len + 1);
    in->key_off[id] = in->arena_used;
    in->key_hash[id] = h;
    in->arena_used += len + 1;
    in->key_bytes_used += len;
    in->slots[slot] = id;
    return id;
}

/* A key longer than scratch cannot be stored, hence cannot be known:
 * ES_ERANGE straight away. */
int32_t es_interner_intern(es_interner *in, const char *s)
{
    if (!in) return ES_EINVAL;
    if (!s) return ES_NULL_ANSWER;
    int len = es_answer_normalize(in->type, s, strlen(s), in->scratch, in->scratch_cap);
    if (len < 0) return len;
    uint32_t h = key_hash(in->scratch, (size_t)len);
    size_t slot = find_slot(in, in->scratch, h);
    if (in->slots[slot] >= 0) return in->slots[slot];
    return add_key(in, slot, (size_t)len, h);
}

const char *es_interner_key(const es_interner *in, int32_t id)
{
    if (!in || id <= ES_NULL_ANSWER || (uint32_t)id >= in->count) return NULL;
    return in->arena + in->key_off[id];
}

uint32_t es_interner_count(const es_interner *in)
{
    return in ? in->count : 0;
}
