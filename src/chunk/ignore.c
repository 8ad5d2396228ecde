/* .gitignore rules; the semantics are gitignore(5)'s. */
#include <string.h>

#include "chunk/chunk.h"

typedef struct rule {
    char *pat;             /* the pattern, escapes kept for the matcher */
    int negate, dir_only, anchored;
} rule;

struct ignore_rules {
    char *base;            /* the .gitignore's folder relative to the root, "" at the root */
    rule *r;
    size_t n;
};

/* [...] at p (after '['); sets *end past ']'. -1 if the class is not closed. */
static int match_class(const char *p, char c, const char **end) {
    int neg = *p == '!' || *p == '^', ok = 0;
    if (neg) p++;
    const char *start = p;
    while (*p && (*p != ']' || p == start)) {
        char lo = *p;
        if (lo == '\\' && p[1]) lo = *++p;
        if (p[1] == '-' && p[2] && p[2] != ']') {
            char hi = p[2];
            if (hi == '\\' && p[3]) hi = p[3], p++;
            if (c >= lo && c <= hi) ok = 1;
            p += 3;
        } else {
            if (c == lo) ok = 1;
            p++;
        }
    }
    if (*p != ']') return -1;
    *end = p + 1;
    return ok != neg;
}

int ignore_glob(const char *p, const char *s) {
    for (; *p; p++, s++) {
        if (p[0] == '*' && p[1] == '*') {
            if (p[2] == '/') { /* "**" + "/": zero or more folders */
                for (const char *t = s;; t++) {
                    if ((t == s || t[-1] == '/') && ignore_glob(p + 3, t)) return 1;
                    if (!*t) return 0;
                }
            }
            if (p[2] == 0) return 1;   /* trailing "**": everything */
            p++;                       /* otherwise like '*' */
        }
        if (*p == '*') {
            for (const char *t = s;; t++) {
                if (ignore_glob(p + 1, t)) return 1;
                if (!*t || *t == '/') return 0;
            }
        }
        if (!*s) return 0;
        if (*p == '?') {
            if (*s == '/') return 0;
        } else if (*p == '[') {
            const char *end;
            int m = *s == '/' ? 0 : match_class(p + 1, *s, &end);
            if (m < 0) { /* unclosed: a literal '[' */
                if (*s != '[') return 0;
                continue;
            }
            if (!m) return 0;
            p = end - 1;
        } else {
            if (*p == '\\' && p[1]) p++;
            if (*p != *s) return 0;
        }
    }
    return *s == 0;
}

int ignore_parse(const char *text, size_t len, const char *base, ignore_rules **out) {
    *out = NULL;
    ignore_rules *r = base_calloc(1, sizeof *r);
    if (!r || !(r->base = base_strndup(base, strlen(base)))) goto oom;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    if (!(r->r = base_calloc(lines, sizeof *r->r))) goto oom;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        size_t a = i, b = e;
        i = e + 1;
        if (b > a && text[b - 1] == '\r') b--;
        /* trailing spaces go unless escaped */
        while (b > a && text[b - 1] == ' ' && !(b - 1 > a && text[b - 2] == '\\')) b--;
        if (b == a || text[a] == '#') continue;
        rule *ru = &r->r[r->n];
        *ru = (rule){0};
        if (text[a] == '!') ru->negate = 1, a++;
        else if (text[a] == '\\' && a + 1 < b && (text[a + 1] == '!' || text[a + 1] == '#')) a++;
        if (b > a && text[b - 1] == '/') ru->dir_only = 1, b--;
        if (b == a) continue;
        /* a slash at the start or in the middle anchors the pattern to base */
        for (size_t k = a; k < b; k++) ru->anchored |= text[k] == '/';
        if (text[a] == '/') a++;
        if (!(ru->pat = base_strndup(text + a, b - a))) goto oom;
        r->n++;
    }
    *out = r;
    return 0;
oom:
    ignore_free(r);
    return base_err(CEMBED_ENOMEM, "out of memory");
}

void ignore_free(ignore_rules *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) base_free(r->r[i].pat);
    base_free(r->r);
    base_free(r->base);
    base_free(r);
}

int ignore_match(const ignore_rules *r, const char *path, int is_dir) {
    const size_t bl = strlen(r->base);
    if (bl) { /* the rules see paths relative to their folder */
        if (strncmp(path, r->base, bl) != 0 || path[bl] != '/') return -1;
        path += bl + 1;
    }
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    for (size_t i = r->n; i-- > 0;) {
        const rule *ru = &r->r[i];
        if (ru->dir_only && !is_dir) continue;
        if (ignore_glob(ru->pat, ru->anchored ? path : name)) return ru->negate ? 0 : 1;
    }
    return -1;
}
