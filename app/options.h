/* The table of integer settings (options.c): each EMBEDDING_* number with
 * its flag, range, default, commands and help line, read by the parsers and
 * listed by --help and `cembed help variables`. */
#ifndef CEMBED_OPTIONS_H
#define CEMBED_OPTIONS_H

#include <stdio.h>

#include "cli.h"

enum { OPT_SERVE = 1u << 0, OPT_WORKER = 1u << 1, OPT_EMBED = 1u << 2, OPT_CACHE = 1u << 3 };

typedef struct opt_def {
    const char *env;    /* EMBEDDING_... */
    const char *flag;   /* the flag that overrides it, or NULL */
    long lo, hi, def;
    unsigned cmds;      /* OPT_*: the commands that read it */
    const char *help;
} opt_def;

/* The row of env; asserts that there is one. */
const opt_def *opt_get(const char *env);
/* *out = env's default, or the variable's value within its range. Returns
 * 0, or EXIT_USAGE after naming the variable, its value and the range. */
int opt_long(const char *env, long *out);
/* A flag's value (NULL: missing) within env's range into *out. Returns 0,
 * or EXIT_USAGE after naming the flag and the range. */
int opt_flag(const char *env, const char *value, long *out);
/* The rows of the commands cmds (OPT_*) under a "numbers" heading, for --help. */
void opt_help(unsigned cmds, FILE *f);
/* Every row as a Markdown table (the README's). */
void opt_table(FILE *f);

#endif
