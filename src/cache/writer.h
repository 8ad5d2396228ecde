/* cache_writer: one thread that stores vectors for many producers (the
 * service's request threads) in batched transactions on its own SQLite
 * connection. put never blocks on the disk: it copies into a bounded queue
 * and drops the vector when the queue is full (a later miss, never a wrong
 * answer). stop stores what is queued, then joins. Vectors not yet committed
 * are found by get_many, so a lookup never misses what was just computed. */
#ifndef CEMBED_CACHE_WRITER_H
#define CEMBED_CACHE_WRITER_H

#include "cache/cache.h"

typedef struct cache_writer cache_writer;
int cache_writer_start(const char *path, uint64_t max_bytes, int dims, cache_writer **out);
void cache_writer_put(cache_writer *w, const uint8_t key[CACHE_KEY_BYTES], const float *vec);
/* Looks n keys up among w's uncommitted vectors (w may be NULL), then in c;
 * for each found copies dims floats (w's dims) to vecs + i * dims and sets
 * hit[i] = 1, else hit[i] = 0. Returns the number found, or -1 when reading
 * c failed (error set; hit[] then holds only what w had). */
int cache_writer_lookup(cache_writer *w, cache *c, const uint8_t (*keys)[CACHE_KEY_BYTES], size_t n, int dims,
                        float *vecs, uint8_t *hit);
void cache_writer_stop(cache_writer *w);

#endif
