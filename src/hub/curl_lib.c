/* libcurl opened at run time; see curl_lib.h. The symbols are looked up
 * once, under pthread_once, and never unloaded. */
#include <dlfcn.h>
#include <pthread.h>

#include "base/base.h"
#include "hub/curl_lib.h"

static curl_lib lib;
static int lib_ok;
static char lib_error[256];

/* dlsym of name into *fn; 0, or -1 with lib_error set. */
static int sym(void *h, const char *name, void **fn) {
    *fn = dlsym(h, name);
    if (*fn) return 0;
    snprintf(lib_error, sizeof lib_error, "no %s in it", name);
    return -1;
}

static void lib_open(void) {
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(lib_error, sizeof lib_error, "%s", dlerror());
        return;
    }
    CURLcode (*global_init)(long) = NULL;
    if (sym(h, "curl_global_init", (void **)&global_init) || sym(h, "curl_easy_init", (void **)&lib.easy_init) ||
        sym(h, "curl_easy_setopt", (void **)&lib.easy_setopt) ||
        sym(h, "curl_easy_perform", (void **)&lib.easy_perform) ||
        sym(h, "curl_easy_getinfo", (void **)&lib.easy_getinfo) ||
        sym(h, "curl_easy_cleanup", (void **)&lib.easy_cleanup) ||
        sym(h, "curl_easy_escape", (void **)&lib.easy_escape) ||
        sym(h, "curl_easy_strerror", (void **)&lib.easy_strerror) || sym(h, "curl_free", (void **)&lib.free))
        return;
    const CURLcode rc = global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(lib_error, sizeof lib_error, "curl_global_init: %s", lib.easy_strerror(rc));
        return;
    }
    lib_ok = 1;
}

int curl_lib_open(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lib_open);
    return lib_ok ? 0 : base_err(CEMBED_EIO, "downloading from the Hub needs libcurl (libcurl.so.4, Debian's libcurl4): %s",
                                 lib_error);
}

const curl_lib *curl_lib_loaded(void) {
    CE_ASSERT(lib_ok);
    return &lib;
}
