/* libcurl, opened with dlopen when the Hub is first asked for (curl_lib.c).
 *
 * Linked normally, libcurl and the 30-odd libraries it needs (Kerberos,
 * LDAP, SSH, HTTP/2, ...) are loaded and relocated at every exec, about
 * 1-2 ms of a start that is meant to take tens (issue 21: workers that scale
 * from zero pay it on every start), while only a download uses them. */
#ifndef CEMBED_CURL_LIB_H
#define CEMBED_CURL_LIB_H

#include <curl/curl.h>

/* The functions of libcurl that hub.c calls. */
typedef struct curl_lib {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *c);
    char *(*easy_escape)(CURL *c, const char *s, int len);
    const char *(*easy_strerror)(CURLcode code);
    void (*free)(void *p);
} curl_lib;

/* Opens libcurl.so.4 and runs curl_global_init, once (any thread). Fails
 * with EIO naming the library and what dlopen said. */
int curl_lib_open(void);
/* The functions, after curl_lib_open succeeded in this thread. */
const curl_lib *curl_lib_loaded(void);

#endif
