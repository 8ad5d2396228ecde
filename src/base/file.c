/* Whole-file reads, read-only maps and atomic writes. Errors name the path
 * and the errno text. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"

/* The maps file_map made that are still mapped: file_map_release only
 * drops pages inside one (on other memory MADV_DONTNEED would zero data). */
static struct map_range {
    uintptr_t lo, hi;
} maps[64];
static pthread_mutex_t maps_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *kind_of(mode_t m) {
    return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISCHR(m) || S_ISBLK(m) ? "a device"
         : S_ISSOCK(m) ? "a socket" : "not a plain file";
}

int file_open_regular(const char *path, int flags, int *fd_out, struct stat *st_out) {
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer (or a
     * reader) forever; a regular file ignores it, and it is cleared below */
    const int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) {
        const int e = errno;
        struct stat st;
        if (e == ENXIO && stat(path, &st) == 0) /* a FIFO with no reader, opened for writing */
            return base_err(CEMBED_EIO, "%s: %s, not a regular file", path, kind_of(st.st_mode));
        return base_err(CEMBED_EIO, "%s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        const int e = errno;
        close(fd);
        return base_err(CEMBED_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return base_err(CEMBED_EIO, "%s: %s, not a regular file", path, kind_of(st.st_mode));
    }
    const int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (st_out) *st_out = st;
    *fd_out = fd;
    return 0;
}

int file_read_all(const char *path, size_t max_bytes, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd;
    struct stat st;
    const int orc = file_open_regular(path, O_RDONLY, &fd, &st);
    if (orc) return orc;
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return base_err(CEMBED_ELIMIT, "%s: %lld bytes, over the limit of %zu", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *p = base_malloc(n + 1);
    if (!p) {
        close(fd);
        return base_err(CEMBED_ENOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        base_free(p);
        return base_err(CEMBED_EIO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    p[n] = 0;
    *data = p;
    *len = n;
    return 0;
}

int file_map(const char *path, const void **map, size_t *len) {
    *map = NULL;
    *len = 0;
    int fd;
    struct stat st;
    const int orc = file_open_regular(path, O_RDONLY, &fd, &st);
    if (orc) return orc;
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    /* not populated: pages come in as they are read, so a weight that is
     * converted at load and released (file_map_release) never holds the
     * whole file resident at once, and an embedding table holds only the
     * rows that were used (the engine counts the rest for the governor) */
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return base_err(CEMBED_EIO, "%s: mmap: %s", path, strerror(e));
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0; i < CE_ARRAY_LEN(maps); i++)
        if (!maps[i].lo) {
            maps[i] = (struct map_range){(uintptr_t)p, (uintptr_t)p + (size_t)st.st_size};
            break;
        }
    pthread_mutex_unlock(&maps_lock);
    *map = p;
    *len = (size_t)st.st_size;
    return 0;
}

void file_unmap(const void *map, size_t len) {
    if (!map || !len) return;
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0; i < CE_ARRAY_LEN(maps); i++)
        if (maps[i].lo == (uintptr_t)map) maps[i] = (struct map_range){0, 0};
    pthread_mutex_unlock(&maps_lock);
    munmap((void *)map, len);
}

size_t file_map_release(const void *p, size_t len) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a0 = (uintptr_t)p, b0 = a0 + len;
    int inside = 0;
    pthread_mutex_lock(&maps_lock);
    for (size_t i = 0; i < CE_ARRAY_LEN(maps) && !inside; i++) inside = maps[i].lo && a0 >= maps[i].lo && b0 <= maps[i].hi;
    pthread_mutex_unlock(&maps_lock);
    const uintptr_t a = (a0 + page - 1) & ~(page - 1), b = b0 & ~(page - 1);
    if (!inside || b <= a || madvise((void *)a, b - a, MADV_DONTNEED) != 0) return 0;
    return b - a;
}

int file_write_all(const char *path, const void *data, size_t len) {
    size_t n = strlen(path);
    char *tmp = base_malloc(n + 16);
    if (!tmp) return base_err(CEMBED_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, n + 16, "%s.tmp%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        base_free(tmp);
        return base_err(CEMBED_EIO, "%s: %s", path, strerror(e));
    }
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    int ok = done == len && fsync(fd) == 0;
    int e = errno;
    ok = (close(fd) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        e = e ? e : errno;
        unlink(tmp);
        base_free(tmp);
        return base_err(CEMBED_EIO, "%s: write failed: %s", path, strerror(e));
    }
    base_free(tmp);
    return 0;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int file_mkdirs(const char *path) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return errno = ENAMETOOLONG, -1;
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) && errno != EEXIST) return -1;
            *s = '/';
        }
    return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = base_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}
