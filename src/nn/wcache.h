/* wcache: a file of prepared Linear weights (quantized, reordered, packed)
 * beside the model, so that a later start maps it instead of preparing
 * again (gemm.c's nn_gemm_cache_*, which says what a weight's parts and a
 * shape's layout are for each backend; this file knows only bytes).
 *
 * File layout (host byte order; the file serves this host's builds only):
 *   0   magic "CEMBWC\r\n" (8 bytes)
 *   8   u32 version (NN_WCACHE_VERSION)
 *   12  u32 header_bytes: everything up to and including the checksum
 *   16  u64 file_bytes: the whole file
 *   24  u32 key_len, u32 n_shapes, u32 n_weights, u32 layout_bytes
 *   40  key [key_len] (text: model identity, binary, backend; see gemm.c),
 *       zeros up to a multiple of 8
 *       shapes [n_shapes]: u32 N, u32 K, layout [layout_bytes] padded to 8
 *       weights [n_weights]: u32 shape, u32 n_parts (<= 3),
 *                            u64 off[3], u64 bytes[3]
 *       u64 checksum: FNV-1a 64 of every header byte before it
 *   then the parts: each at an offset aligned to 4096 (64 for parts
 *   under 4096 bytes), inside the file, after the header.
 * A file is trusted when its header parses, its checksum and sizes hold
 * and its key is the one asked for; the payload is not hashed (that would
 * cost what the cache saves): it is ours, written to a temporary file,
 * synced and renamed into place, never changed after.
 */
#ifndef CEMBED_WCACHE_H
#define CEMBED_WCACHE_H

#include <stddef.h>
#include <stdint.h>

#define NN_WCACHE_VERSION 1
#define NN_WCACHE_PARTS 3

/* One shape's layout, as the backend describes it (opaque here). */
typedef struct nn_wc_shape {
    uint32_t N, K;
    const void *layout;   /* layout_bytes bytes */
} nn_wc_shape;

/* One weight: its shape (an index into the shapes) and up to three parts. */
typedef struct nn_wc_weight {
    uint32_t shape, n_parts;
    const void *part[NN_WCACHE_PARTS];
    uint64_t bytes[NN_WCACHE_PARTS];
} nn_wc_weight;

/* A parsed file: pointers into its image. */
typedef struct nn_wcache_view {
    const uint8_t *base;
    size_t len;
    const char *key;
    uint32_t key_len, n_shapes, n_weights, layout_bytes;
    const uint8_t *shapes, *weights;   /* the records */
} nn_wcache_view;

/* Parses the image p[0..len) of a whole file: every size and offset is
 * checked against len before any is used. OUT: *v. Fails with EFORMAT
 * (the message says what is wrong). */
int nn_wcache_parse(const uint8_t *p, size_t len, nn_wcache_view *v);
/* Shape i < v->n_shapes and weight i < v->n_weights of a parsed file
 * (weight parts point into the image). Cannot fail. */
void nn_wcache_shape_at(const nn_wcache_view *v, uint32_t i, nn_wc_shape *out);
void nn_wcache_weight_at(const nn_wcache_view *v, uint32_t i, nn_wc_weight *out);

typedef struct nn_wcache nn_wcache;

/* The identity of model folder dir's weights and config (real path, device,
 * inode, size, mtime of model.safetensors and config.json) as key text
 * into out[0..n). Returns 0, or -1 when a file cannot be stat'ed. */
int nn_wcache_model_id(const char *dir, char *out, size_t n);

/* Opens the cache in folder `dir` for the weights of model folder
 * model_dir (model_id: nn_wcache_model_id taken before the model was
 * loaded; the cache is off when the files changed since), `name` (the
 * precision and backend: which file of the model this is) and backend_key
 * (the rest of the key). A valid file is mapped (MAP_PRIVATE, read-write)
 * and its mtime touched; otherwise the cache waits for nn_wcache_write.
 * OUT: *out (NULL: no cache: off, the folder unusable (warned once), or out
 * of memory). Cannot fail. */
void nn_wcache_open(const char *dir, const char *model_dir, const char *model_id, const char *name,
                    const char *backend_key, nn_wcache **out);
/* The mapped file when it was valid, else NULL. Owned by wc. */
const nn_wcache_view *nn_wcache_hit(const nn_wcache *wc);
/* Writes shapes and weights (layout_bytes each shape's layout) to a
 * temporary file, syncs and renames it into place, deletes the files it
 * replaces (this model and name with another key; files whose model is
 * gone or unused for 30 days), then maps it, unpopulated: *view then
 * describes the new file (owned by wc), so the caller may point its
 * weights into it, freeing its own copies, then nn_wcache_populate. Returns
 * 0, or -1 (logged; nothing left behind; the cache is then off). */
int nn_wcache_write(nn_wcache *wc, const nn_wc_shape *shapes, uint32_t n_shapes, uint32_t layout_bytes,
                    const nn_wc_weight *weights, uint32_t n_weights, const nn_wcache_view **view);
/* Maps every page of the file now (the memory measured after loading then
 * holds the weights, as it would their own copies). NULL is ignored. */
void nn_wcache_populate(nn_wcache *wc);
/* Unmaps the file (no pointer into it may be used after). NULL is ignored. */
void nn_wcache_free(nn_wcache *wc);
/* The path of the cache file (owned by wc), for logs and tests. */
const char *nn_wcache_path(const nn_wcache *wc);

#endif
