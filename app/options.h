/* The table of settings (options.c): each EMBEDDING_* variable with its
 * flag, type, range or values, default, commands and help line. Every
 * setting is parsed through it (opt_long / opt_text / opt_bool for the
 * variable, then opt_flag / opt_take_* for the flag that overrides it), and
 * every row is listed by --help and `cembed help variables`. */
#ifndef CEMBED_OPTIONS_H
#define CEMBED_OPTIONS_H

#include <stdio.h>

#include "cli.h"

/* the commands that read a setting (in the order `cembed help variables` names them) */
enum {
    OPT_SERVE = 1u << 0, OPT_WORKER = 1u << 1, OPT_EMBED = 1u << 2, OPT_CACHE = 1u << 3, OPT_TOKENIZE = 1u << 4,
    OPT_RERANK = 1u << 5, OPT_INFO = 1u << 6, OPT_ENQUEUE = 1u << 7, OPT_RESULT = 1u << 8
};

/* OPT_CHOICE: text that must be one of the row's values (or of its also) */
typedef enum { OPT_NUMBER = 0, OPT_TEXT, OPT_BOOL, OPT_PATH, OPT_CHOICE } opt_type;

typedef struct opt_def {
    const char *env;    /* EMBEDDING_... */
    const char *flag;   /* the flag that overrides it, or NULL */
    long lo, hi, def;   /* OPT_NUMBER: the range and the default */
    unsigned cmds;      /* OPT_*: the commands that read it */
    const char *help;
    opt_type type;
    const char *values, *def_text;   /* the others: what they take and their default, as said */
    const char *also;   /* OPT_CHOICE: words taken besides values, not listed (NULL: none) */
    const char *alias;  /* an older name of the variable, read before it (NULL: none) */
} opt_def;

/* The row of env; asserts that there is one. Each reader below asserts
 * that the row has its type (opt_text: any but a number or a boolean). */
const opt_def *opt_get(const char *env);
/* The one parser of every setting: value, from the variable env (flag 0)
 * or from its flag (flag 1; NULL: the flag had no value), checked against
 * env's row: a number within the range into *num, a boolean (true, 1,
 * false, 0) into *num as 1 or 0, a choice among the values and text or a
 * path (not empty) into *text (value itself, not copied). Returns 0, or
 * EXIT_USAGE after naming the variable and its value, or the flag, and
 * what it takes. */
int opt_parse(const char *env, int flag, const char *value, long *num, const char **text);
/* *out = env's default, or the variable's (then its alias's, read first)
 * value within its range. Returns 0, or EXIT_USAGE (said, as opt_parse). */
int opt_long(const char *env, long *out);
/* A flag's value (NULL: missing) within env's range into *out. Returns 0,
 * or EXIT_USAGE after naming the flag and the range. */
int opt_flag(const char *env, const char *value, long *out);
/* The variable's text (a choice among the row's values, text, a path) into
 * *out when it is set and not empty; *out is left as it is (the caller's
 * default) otherwise. Returns 0, or EXIT_USAGE (said). */
int opt_text(const char *env, const char **out);
/* *out = env's default (its def_text, "true" or "false"), or the variable's
 * true/1 or false/0 as 1 or 0. Returns 0, or EXIT_USAGE (said). */
int opt_bool(const char *env, int *out);
/* A number within env's range, decimals allowed (a percentage), into *out
 * when the variable is set; else *out = the default. 0 or EXIT_USAGE (said). */
int opt_double(const char *env, double *out);
/* When argv[*i] is env's flag: parses the value after it into *out (a
 * number's into a long, the others' text into a const char *), moves *i
 * past it and returns 1; 0 when argv[*i] is not the flag; -1 after saying
 * what the flag takes. */
int opt_take_long(const char *env, int argc, char **argv, int *i, long *out);
int opt_take_text(const char *env, int argc, char **argv, int *i, const char **out);
/* The rows of the commands cmds (OPT_*), under a "numbers" and a "settings"
 * heading, for --help. */
void opt_help(unsigned cmds, FILE *f);
/* Every row as a Markdown table (the README's). */
void opt_table(FILE *f);

#endif
