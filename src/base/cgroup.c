/* The cgroups of this process, from /proc/self/cgroup, whose lines are
 *   v2: "0::/path"
 *   v1: "N:controller[,controller...]:/path"   (each hierarchy mounted at ROOT/controller)
 * A limit (memory, CPU quota) may sit on the process's cgroup or on any
 * ancestor, so callers visit all of them and keep the smallest. */
#include <string.h>

#include "base.h"

/* 1 when the comma-separated list holds name */
static int has_controller(const char *list, const char *name) {
    const size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

void cgroup_each_dir(const char *root, const char *self_cgroup, const char *controller, cgroup_dir_fn fn, void *ctx) {
    FILE *f = fopen(self_cgroup, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (!a || !b) continue;
        *a = *b = 0;
        const int v2 = strcmp(line, "0") == 0 && a[1] == 0;
        if (!v2 && !has_controller(a + 1, controller)) continue;
        char p[512], dir[800];
        snprintf(p, sizeof p, "%s", b + 1);
        for (;;) {   /* this cgroup, then each ancestor up to "/" */
            const char *rel = strcmp(p, "/") == 0 ? "" : p;
            if (v2) snprintf(dir, sizeof dir, "%s%s", root, rel);
            else snprintf(dir, sizeof dir, "%s/%s%s", root, controller, rel);
            fn(dir, p, v2, ctx);
            char *slash = strrchr(p, '/');
            if (!slash || strcmp(p, "/") == 0) break;
            if (slash == p) slash[1] = 0;
            else *slash = 0;
        }
    }
    if (f) fclose(f);
}
