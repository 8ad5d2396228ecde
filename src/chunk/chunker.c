/* The code chunker; see chunk.h. */
#include <ctype.h>
#include <string.h>

#include "chunk/chunk.h"

int chunk_estimate_tokens(const char *s, size_t n) {
    int t = 0;
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '_' || c >= 0x80) {
            while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_' || (unsigned char)s[i] >= 0x80)) i++;
            t++;
        } else {
            t += !isspace(c);
            i++;
        }
    }
    return t;
}

int chunk_is_binary(const char *text, size_t len) { return memchr(text, 0, CE_MIN(len, (size_t)8000)) != NULL; }

int chunk_split_lines(const char *text, size_t len, size_t (**lines)[2], size_t *n) {
    size_t count = 0;
    for (size_t i = 0; i < len; i++) count += text[i] == '\n';
    if (len && text[len - 1] != '\n') count++;
    *n = 0;
    *lines = base_malloc((count ? count : 1) * sizeof **lines);
    if (!*lines) return base_err(CEMBED_ENOMEM, "out of memory");
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        size_t end = e > i && text[e - 1] == '\r' ? e - 1 : e;
        (*lines)[*n][0] = i;
        (*lines)[(*n)++][1] = end;
        i = e + 1;
    }
    return 0;
}

static int blank(const char *text, const size_t *l) {
    for (size_t i = l[0]; i < l[1]; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\f' && text[i] != '\v') return 0;
    return 1;
}

/* A line that only closes a block: "}", "};", "end", ")" ... */
static int closer(const char *text, const size_t *l) {
    size_t i = l[0];
    while (i < l[1] && (text[i] == ' ' || text[i] == '\t')) i++;
    if (i == l[1]) return 0;
    if (text[i] == '}' || text[i] == ')' || text[i] == ']') return 1;
    return l[1] - i >= 3 && strncmp(text + i, "end", 3) == 0 && (l[1] - i == 3 || text[i + 3] == ';');
}

/* How good a cut before line i is (0 = no better than anywhere). */
static int cut_score(const char *text, const size_t (*lines)[2], size_t i) {
    const size_t *l = lines[i], *prev = lines[i - 1];
    const int col0 = l[1] > l[0] && text[l[0]] != ' ' && text[l[0]] != '\t' && !closer(text, l) && !blank(text, l);
    if (col0 && (blank(text, prev) || closer(text, prev))) return 3;   /* a new definition */
    if (blank(text, prev)) return 2;
    return col0;
}

int chunk_lines(const char *text, const size_t (*lines)[2], const int *tokens, size_t n_lines, const chunk_opts *o,
                chunk_span **spans, size_t *n) {
    CE_ASSERT(o->max_tokens >= 1 && o->max_lines >= 1 && o->overlap >= 0 && o->overlap < o->max_lines);
    size_t cap = 16;
    *n = 0;
    *spans = base_malloc(cap * sizeof **spans);
    if (!*spans) return base_err(CEMBED_ENOMEM, "out of memory");
    size_t start = 0;
    while (start < n_lines) {
        /* the longest window from start that fits */
        size_t end = start;   /* exclusive */
        long tok = 0;
        while (end < n_lines && (int)(end - start) < o->max_lines && (end == start || tok + tokens[end] <= o->max_tokens)) {
            tok += tokens[end];
            end++;
        }
        if (end < n_lines && end - start >= 4) {
            /* cut at the best boundary in the window's second half, the later one on ties */
            size_t best = end;
            int best_score = 0;
            for (size_t i = start + (end - start) / 2; i < end; i++) {
                if (i == start) continue;
                int s = cut_score(text, lines, i);
                if (s >= best_score && s > 0) best = i, best_score = s;
            }
            end = best;
        }
        /* skip a window of whitespace only; trim blank lines at its ends */
        size_t a = start, b = end;
        while (a < b && blank(text, lines[a])) a++;
        while (b > a && blank(text, lines[b - 1])) b--;
        if (a < b) {
            if (*n == cap) {
                cap *= 2;
                chunk_span *p = base_realloc(*spans, cap * sizeof *p);
                if (!p) {
                    base_free(*spans);
                    *spans = NULL;
                    return base_err(CEMBED_ENOMEM, "out of memory");
                }
                *spans = p;
            }
            (*spans)[(*n)++] = (chunk_span){(int)a, (int)b - 1};
        }
        if (end >= n_lines) break;
        /* overlap, while still moving forward past the last window's first line */
        size_t next = end > start + (size_t)o->overlap ? end - (size_t)o->overlap : end;
        if (a < b && next <= a) next = a + 1;
        start = next > start ? next : end;
    }
    return 0;
}
