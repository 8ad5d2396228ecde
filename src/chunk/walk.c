/* The source tree walker; see chunk.h. */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "chunk/chunk.h"

static const char *const vcs_dirs[] = {".git", ".hg", ".svn", ".bzr", "_darcs", "CVS"};

typedef struct walker {
    const char *root;               /* as given, no trailing slash */
    uint64_t max_bytes;
    walk_list *list;
    walk_stats *st;
    ignore_rules **rules;           /* stack: one per folder that has a .gitignore */
    size_t n_rules, cap_rules;
    size_t up;                      /* bytes of the root's own name and '/' that its files' paths keep */
} walker;

static int list_add(walk_list *l, char *path, size_t rel, uint64_t size) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        char **p = base_realloc(l->paths, cap * sizeof *p);
        if (p) l->paths = p;
        uint64_t *s = p ? base_realloc(l->sizes, cap * sizeof *s) : NULL;
        if (s) l->sizes = s;
        size_t *r = s ? base_realloc(l->rel, cap * sizeof *r) : NULL;
        if (r) l->rel = r;
        if (!p || !s || !r) {
            base_free(path);
            return base_err(CEMBED_ENOMEM, "out of memory");
        }
        l->cap = cap;
    }
    l->paths[l->n] = path;
    l->rel[l->n] = rel;
    l->sizes[l->n++] = size;
    return 0;
}

void walk_list_free(walk_list *l) {
    for (size_t i = 0; i < l->n; i++) base_free(l->paths[i]);
    base_free(l->paths);
    base_free(l->sizes);
    base_free(l->rel);
    memset(l, 0, sizeof *l);
}

/* 1 if the deepest rule set that has an opinion excludes rel */
static int ignored(const walker *w, const char *rel, int is_dir) {
    for (size_t i = w->n_rules; i-- > 0;) {
        int m = ignore_match(w->rules[i], rel, is_dir);
        if (m >= 0) return m;
    }
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Walks folder rel ("" = the root). */
static int walk_dir(walker *w, const char *rel) {
    char *dir = *rel ? path_join(w->root, rel) : base_strndup(w->root, strlen(w->root));
    if (!dir) return base_err(CEMBED_ENOMEM, "out of memory");
    int rc = 0, pushed = 0;
    /* this folder's .gitignore applies to everything below it */
    char *gi = path_join(dir, ".gitignore");
    char *text = NULL;
    size_t len = 0;
    if (gi && file_read_all(gi, 16u << 20, &text, &len) == 0) {
        ignore_rules *r;
        if (w->n_rules == w->cap_rules) {
            size_t cap = w->cap_rules ? w->cap_rules * 2 : 16;
            ignore_rules **p = base_realloc(w->rules, cap * sizeof *p);
            if (!p) rc = base_err(CEMBED_ENOMEM, "out of memory");
            else w->rules = p, w->cap_rules = cap;
        }
        if (!rc && (rc = ignore_parse(text, len, rel, &r)) == 0) {
            w->rules[w->n_rules++] = r;
            pushed = 1;
        }
    }
    base_err_clear();
    base_free(text);
    base_free(gi);
    DIR *d = rc ? NULL : opendir(dir);
    if (!rc && !d) {
        w->st->unreadable++;
        goto done;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; !rc && d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = base_realloc(names, cap * sizeof *p);
            if (!p) {
                rc = base_err(CEMBED_ENOMEM, "out of memory");
                break;
            }
            names = p;
        }
        if (!(names[n] = base_strndup(e->d_name, strlen(e->d_name)))) rc = base_err(CEMBED_ENOMEM, "out of memory");
        else n++;
    }
    if (d) closedir(d);
    if (!rc) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && !rc; i++) {
        char *child_rel = *rel ? path_join(rel, names[i]) : base_strndup(names[i], strlen(names[i]));
        char *full = child_rel ? path_join(w->root, child_rel) : NULL;
        struct stat st;
        if (!child_rel || !full) {
            rc = base_err(CEMBED_ENOMEM, "out of memory");
        } else if (lstat(full, &st) != 0) {
            w->st->unreadable++;
        } else if (S_ISLNK(st.st_mode)) {
            w->st->symlinks++;
        } else if (S_ISDIR(st.st_mode)) {
            int vcs = 0;
            for (size_t k = 0; k < sizeof vcs_dirs / sizeof *vcs_dirs; k++) vcs |= strcmp(names[i], vcs_dirs[k]) == 0;
            if (vcs) w->st->vcs_dirs++;
            else if (ignored(w, child_rel, 1)) w->st->ignored++;
            else rc = walk_dir(w, child_rel);
        } else if (S_ISREG(st.st_mode)) {
            if (ignored(w, child_rel, 0)) {
                w->st->ignored++;
            } else if ((uint64_t)st.st_size > w->max_bytes) {
                w->st->too_large++;
            } else {
                rc = list_add(w->list, full, strlen(full) - strlen(child_rel) - w->up, (uint64_t)st.st_size);
                full = NULL;
                if (!rc) w->st->files++, w->st->bytes += (uint64_t)st.st_size;
            }
        }
        base_free(child_rel);
        base_free(full);
    }
    for (size_t i = 0; i < n; i++) base_free(names[i]);
    base_free(names);
done:
    if (pushed) ignore_free(w->rules[--w->n_rules]);
    base_free(dir);
    return rc;
}

/* A root that is itself a Python package (it holds __init__.py) counts from
 * its parent, so that its modules are named from the package down
 * (`numpy/linalg/linalg.py`): returns the bytes of its last component and
 * the '/' after it, else 0. */
static size_t package_name(const char *root) {
    char *init = path_join(root, "__init__.py");
    struct stat s;
    const int pkg = init && stat(init, &s) == 0 && S_ISREG(s.st_mode);
    base_free(init);
    const char *name = strrchr(root, '/');
    name = name ? name + 1 : root;
    return pkg && *name ? strlen(name) + 1 : 0;
}

int walk_paths(const char *const *paths, size_t n, uint64_t max_file_bytes, walk_list *list, walk_stats *st) {
    memset(list, 0, sizeof *list);
    memset(st, 0, sizeof *st);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        struct stat s;
        if (stat(paths[i], &s) != 0) {
            rc = base_err(CEMBED_EIO, "%s: %s", paths[i], strerror(errno));
        } else if (S_ISDIR(s.st_mode)) {
            size_t len = strlen(paths[i]);
            while (len > 1 && paths[i][len - 1] == '/') len--;
            char *root = base_strndup(paths[i], len);
            walker w = {.root = root, .max_bytes = max_file_bytes, .list = list, .st = st, .up = package_name(root)};
            rc = root ? walk_dir(&w, "") : base_err(CEMBED_ENOMEM, "out of memory");
            base_free(w.rules);
            base_free(root);
        } else if (S_ISREG(s.st_mode)) {
            if ((uint64_t)s.st_size > max_file_bytes) {
                st->too_large++;
            } else {
                char *p = base_strndup(paths[i], strlen(paths[i]));
                const char *base = p ? strrchr(p, '/') : NULL;
                const size_t rel = p && p[0] == '/' && base ? (size_t)(base + 1 - p) : 0;
                rc = p ? list_add(list, p, rel, (uint64_t)s.st_size) : base_err(CEMBED_ENOMEM, "out of memory");
                if (!rc) st->files++, st->bytes += (uint64_t)s.st_size;
            }
        } else {
            rc = base_err(CEMBED_EIO, "%s: not a file or a folder", paths[i]);
        }
    }
    if (rc) walk_list_free(list);
    return rc;
}
