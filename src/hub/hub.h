/* hub: models from the Hugging Face Hub, in the Python huggingface_hub's
 * cache layout, so a model either side downloaded serves the other.
 *
 *   $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
 *   else ~/.cache/huggingface/hub:
 *     models--ORG--NAME/refs/REVISION          the commit a branch or tag named
 *     models--ORG--NAME/blobs/ETAG             file contents (LFS files: their sha256)
 *     models--ORG--NAME/snapshots/COMMIT/FILE  -> ../../blobs/ETAG
 *
 * hub_resolve asks GET {endpoint}/api/models/{repo}/revision/{rev} for the
 * commit and the files, refuses a model the engine cannot run (no
 * safetensors weights, an architecture other than BERT) before anything
 * large is fetched, then GETs {endpoint}/{repo}/resolve/{commit}/{file} for
 * each file it lacks: into blobs/ETAG.incomplete, resumed with Range after
 * an interruption, checked against the Hub's sha256 (git's blob sha1 for
 * small files) before it is moved into place. HF_TOKEN goes as a Bearer
 * token to the endpoint's own host only (never across a redirect to
 * another). HF_HUB_OFFLINE=1: the cache only, never the network.
 */
#ifndef CEMBED_HUB_H
#define CEMBED_HUB_H

#include "base/base.h"

typedef struct hub_opts {
    char endpoint[512];     /* HF_ENDPOINT, else https://huggingface.co */
    char shown[512];        /* the endpoint as messages show it: a password in it is "***" */
    int timeout_s;          /* HF_HUB_DOWNLOAD_TIMEOUT (10): connecting, and a transfer under 1 KB/s for this long */
    char token[512];        /* HF_TOKEN (else HUGGING_FACE_HUB_TOKEN); "" = none */
    char cache[2048];       /* the hub cache folder */
    int offline;            /* HF_HUB_OFFLINE */
    int progress;           /* a bar on stderr (a terminal), else log lines */
} hub_opts;

/* From the environment. Returns 0, or EINVAL naming a bad variable. */
int hub_opts_from_env(hub_opts *o);

/* "ORG/NAME" or "ORG/NAME@REVISION" (NAME alone is not a repo id here: it
 * could be a folder). Returns 1 when spec has that shape. */
int hub_is_repo_id(const char *spec);
/* A revision: a commit id, or a branch or tag name as Git allows it
 * (components between single slashes, none starting with '.' or ending
 * with ".lock", no "..", no trailing '.' or '/'). Returns 1 or 0. */
int hub_is_revision(const char *rev);
/* Splits spec into repo and revision ("main" when absent). Returns 0 or EINVAL. */
int hub_split(const char *spec, char *repo, size_t rn, char *rev, size_t vn);

/* The snapshot folder of repo at rev: from the cache when it holds the
 * model's files (no network when offline or when rev is a commit found
 * complete), else downloaded (download = 1; else ENOTFOUND-like EIO with
 * what to run). OUT: dir[0..n). Returns 0, EIO (network, HTTP, checksum,
 * offline and missing: the message says which and what to do), EMODEL (a
 * model the engine cannot run) or ENOMEM. */
int hub_resolve(const hub_opts *o, const char *repo, const char *rev, int download, char *dir, size_t n);

/* ---- parsers, apart for tests and fuzzing ---- */

typedef struct hub_file {
    char name[256];         /* rfilename */
    char etag[72];          /* lfs sha256 (hex), else the git blob id */
    int lfs;
    uint64_t size;
} hub_file;

typedef struct hub_info {
    char sha[48];           /* the commit */
    char model_type[64];    /* config.model_type, "" when the Hub did not say */
    int gated, is_private;
    hub_file *files;        /* the ones cembed uses */
    size_t n_files;
    int has_safetensors, has_tokenizer, has_config;
} hub_info;

/* Parses the API's JSON answer (the files cembed uses kept). Returns 0,
 * EFORMAT (message names what is wrong) or ENOMEM. Free with hub_info_free. */
int hub_info_parse(const char *json, size_t len, hub_info *out);
void hub_info_free(hub_info *i);

#endif
