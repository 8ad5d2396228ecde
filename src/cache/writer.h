/* cache_writer: one thread that stores vectors for many producers (the
 * service's request threads) in batched transactions on its own SQLite
 * connection. put never blocks on the disk: it copies into a bounded queue
 * and drops the vector when the queue is full (a later miss, never a wrong
 * answer). stop stores what is queued, then joins. */
#ifndef CEMBED_CACHE_WRITER_H
#define CEMBED_CACHE_WRITER_H

#include "cache/cache.h"

typedef struct cache_writer cache_writer;
int cache_writer_start(const char *path, uint64_t max_bytes, int dims, cache_writer **out);
void cache_writer_put(cache_writer *w, const uint8_t key[CACHE_KEY_BYTES], const float *vec);
void cache_writer_stop(cache_writer *w);

#endif
