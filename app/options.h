/* The table of settings (options.c): each EMBEDDING_* variable with its
 * flag, type, range or values, default, commands and help line; the numbers
 * are read by the parsers through it, and every row is listed by --help and
 * `cembed help variables`. */
#ifndef CEMBED_OPTIONS_H
#define CEMBED_OPTIONS_H

#include <stdio.h>

#include "cli.h"

/* the commands that read a setting (in the order `cembed help variables` names them) */
enum {
    OPT_SERVE = 1u << 0, OPT_WORKER = 1u << 1, OPT_EMBED = 1u << 2, OPT_CACHE = 1u << 3, OPT_TOKENIZE = 1u << 4,
    OPT_RERANK = 1u << 5, OPT_INFO = 1u << 6, OPT_ENQUEUE = 1u << 7, OPT_RESULT = 1u << 8
};

typedef enum { OPT_NUMBER = 0, OPT_TEXT, OPT_BOOL, OPT_PATH } opt_type;

typedef struct opt_def {
    const char *env;    /* EMBEDDING_... */
    const char *flag;   /* the flag that overrides it, or NULL */
    long lo, hi, def;   /* OPT_NUMBER: the range and the default */
    unsigned cmds;      /* OPT_*: the commands that read it */
    const char *help;
    opt_type type;
    const char *values, *def_text;   /* the others: what they take and their default, as said */
} opt_def;

/* The row of env; asserts that there is one. opt_long and opt_flag assert
 * that it is a number's. */
const opt_def *opt_get(const char *env);
/* *out = env's default, or the variable's value within its range. Returns
 * 0, or EXIT_USAGE after naming the variable, its value and the range. */
int opt_long(const char *env, long *out);
/* A flag's value (NULL: missing) within env's range into *out. Returns 0,
 * or EXIT_USAGE after naming the flag and the range. */
int opt_flag(const char *env, const char *value, long *out);
/* The rows of the commands cmds (OPT_*), under a "numbers" and a "settings"
 * heading, for --help. */
void opt_help(unsigned cmds, FILE *f);
/* Every row as a Markdown table (the README's). */
void opt_table(FILE *f);

#endif
