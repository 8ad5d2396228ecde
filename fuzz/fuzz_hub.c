/* libFuzzer target: the Hub client's parsers: the API's JSON answer about a
 * model (hub_info_parse) and repo ids (ORG/NAME[@REVISION]), which become
 * paths in the cache: an accepted id may not climb out of it. */
#include <string.h>

#include "hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hub_info info;
    if (hub_info_parse((const char *)data, size, &info) == 0) {
        CE_ASSERT(strlen(info.sha) == 40);
        for (size_t k = 0; k < info.n_files; k++) {
            const hub_file *f = &info.files[k];
            CE_ASSERT(f->etag[0] == 0 ? !f->lfs : strlen(f->etag) == (f->lfs ? 64u : 40u));   /* none: asked by HEAD */
            CE_ASSERT(!strstr(f->name, "..") || strchr(f->name, '/') != NULL);
            CE_ASSERT(f->name[0] != '/');
        }
        hub_info_free(&info);
    }
    char s[512];
    const size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    memcpy(s, data, n);
    s[n] = 0;
    if (hub_is_repo_id(s)) {
        char repo[256], rev[300];
        CE_ASSERT(hub_split(s, repo, sizeof repo, rev, sizeof rev) == 0);
        CE_ASSERT(strchr(repo, '/') && repo[0] != '.' && !strstr(repo, "..") && !strstr(rev, ".."));
        CE_ASSERT(repo[0] != '/' && rev[0]);
        const size_t rl = strlen(rev);   /* a Git ref: no empty component, none hidden, no trailing '/' or '.' */
        CE_ASSERT(rev[0] != '/' && rev[rl - 1] != '/' && rev[rl - 1] != '.' && !strstr(rev, "//") && !strstr(rev, "/."));
    }
    return 0;
}
