/* Logging to stderr with a UTC timestamp and level, one line per call. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base.h"

static int log_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(int level) { log_level = level; }

int log_level_from(str name) {
    static const char *names[] = {"debug", "info", "warning", "error", "off"};
    for (int i = 0; i < (int)CE_ARRAY_LEN(names); i++)
        if (str_eq_cstr(name, names[i])) return i;
    if (str_eq_cstr(name, "warn")) return LOG_WARNING;
    return -1;
}

void log_msg(int level, const char *fmt, ...) {
    static const char *tags[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    if (level < log_level || level >= LOG_OFF) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %s cembed: ",
                  ts.tv_nsec / 1000000, tags[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&log_lock);
}

double time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
