/* Flag and environment handling shared by the subcommands. */
#include <errno.h>
#include <string.h>

#include <sys/stat.h>

#include "cli.h"
#include "hub/hub.h"
#include "options.h"

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("cembed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_parse_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* "fp32" | "bf16" | "int8" (checked by the table) -> a cembed_precision */
static int precision_from(const char *s) {
    static const char *const names[] = {[CEMBED_FP32] = "fp32", [CEMBED_BF16] = "bf16", [CEMBED_INT8] = "int8"};
    for (int p = 0; p < (int)CE_ARRAY_LEN(names); p++)
        if (strcmp(s, names[p]) == 0) return p;
    return -1;
}

/* One model, or several (serve) separated by commas, from list (changed in place). */
static void split_models(cli_common *c, char *list, int replace) {
    if (replace) c->n_models = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && c->n_models < CLI_MAX_MODELS;
         t = strtok_r(NULL, ",", &save))
        if (*t) c->model_specs[c->n_models++] = t;
    c->model_dir = c->n_models ? c->model_specs[0] : NULL;
}

/* The weight cache's default folder: $XDG_CACHE_HOME/cembed/weights, else ~/.cache/cembed/weights. */
static void weight_cache_default(char *out, size_t n) {
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && *x == '/') snprintf(out, n, "%s/cembed/weights", x);
    else snprintf(out, n, "%s/.cache/cembed/weights", home && *home ? home : "/root");
}

int cli_common_init(cli_common *c) {
    *c = (cli_common){.model_dir = NULL, .precision = cembed_precision_default()};
    const char *prec = NULL, *model = NULL, *lvl = NULL, *wcache = NULL;
    long threads;
    if (opt_text("EMBEDDING_PRECISION", &prec) || opt_text("EMBEDDING_GEMM", &c->gemm) ||
        opt_text("EMBEDDING_MODEL", &model) || opt_long("EMBEDDING_THREADS", &threads) ||
        opt_text("EMBEDDING_LOG_LEVEL", &lvl) || opt_text("EMBEDDING_WEIGHT_CACHE", &wcache))
        return EXIT_USAGE;
    static char wcache_default[4096];   /* the process's; the variable's value lives as long */
    if (!wcache) weight_cache_default(wcache_default, sizeof wcache_default), wcache = wcache_default;
    c->weight_cache = strcmp(wcache, "off") == 0 ? NULL : wcache;
    if (prec) c->precision = precision_from(prec);
    if (model) {
        snprintf(c->spec_buf, sizeof c->spec_buf, "%s", model);
        split_models(c, c->spec_buf, 1);
    }
    c->threads = (int)threads;
    if (lvl) log_set_level(log_level_from(str_from(lvl, strlen(lvl))));
    return 0;
}

cembed_options cli_model_options(const cli_common *c, int max_batch) {
    return (cembed_options){
        .threads = c->threads,
        .max_batch = max_batch,
        .max_seq_len = c->max_seq_len,
        .precision = c->precision,
        .gemm = c->gemm,
        .weight_cache = c->weight_cache};
}

/* --model, repeated or a comma list: the flags replace EMBEDDING_MODEL's list, and add up. */
static int model_flag(cli_common *c, const char *list) {
    const int n0 = c->models_from_flags ? c->n_models : 0;
    int n = n0;
    for (const char *p = list; *p; p += *p == ',')   /* count as strtok_r will split */
        if (*p != ',') n++, p += strcspn(p, ",");
    if (n > CLI_MAX_MODELS) {
        cli_error("--model: at most %d models", CLI_MAX_MODELS);
        return -1;
    }
    split_models(c, (char *)list, !c->models_from_flags);
    c->models_from_flags = 1;
    return 1;
}

int cli_common_flag(cli_common *c, int argc, char **argv, int *i) {
    const char *text = NULL;
    long v;
    int r;
    if ((r = opt_take_text("EMBEDDING_MODEL", argc, argv, i, &text))) return r < 0 ? r : model_flag(c, text);
    if ((r = opt_take_text("EMBEDDING_GEMM", argc, argv, i, &c->gemm))) return r;
    if ((r = opt_take_text("EMBEDDING_PRECISION", argc, argv, i, &text)) > 0) c->precision = precision_from(text);
    if (r) return r;
    if ((r = opt_take_long("EMBEDDING_THREADS", argc, argv, i, &v)) > 0) c->threads = (int)v;
    if (r) return r;
    if ((r = opt_take_long("EMBEDDING_MAX_BATCH_SIZE", argc, argv, i, &v)) > 0) c->batch_size = (int)v;
    if (r) return r;
    if (strcmp(argv[*i], "--max-seq-len") != 0) return 0;   /* a flag only: no variable sets it */
    if (*i + 1 >= argc || cli_parse_int(argv[*i + 1], 2, 1 << 20, &v)) {
        cli_error("--max-seq-len needs an integer in [2, %d]", 1 << 20);
        return -1;
    }
    c->max_seq_len = (int)v;
    ++*i;
    return 1;
}


void cli_data_models_dir(char *out, size_t n) {
    const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (x && *x == '/') snprintf(out, n, "%s/cembed/models", x);
    else snprintf(out, n, "%s/.local/share/cembed/models", home && *home ? home : "/root");
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* One model spec into a folder, in out[0..n). */
static int resolve_one(const hub_opts *ho, const char *spec, char *out, size_t n, const char **dir) {
    if (!spec) { /* the default, wherever the command runs */
        char data[3000], cfg[4200];
        if (hub_resolve(ho, DEFAULT_MODEL_REPO, "main", 0, out, n) == 0) {
            *dir = out;
            return 0;
        }
        cli_data_models_dir(data, sizeof data);
        snprintf(out, n, "%s/" DEFAULT_MODEL_NAME, data);
        snprintf(cfg, sizeof cfg, "%s/config.json", out);
        if (file_exists(cfg)) {
            *dir = out;
            return 0;
        }
        if (file_exists("models/" DEFAULT_MODEL_NAME "/config.json")) { /* a checkout from before the data folder */
            *dir = "models/" DEFAULT_MODEL_NAME;
            return 0;
        }
        cli_error("no model: pass --model DIR or ORG/NAME (a Hub repo), or get the default with "
                  "scripts/fetch-model.sh (into %s) or `cembed pull " DEFAULT_MODEL_REPO "`", out);
        return EXIT_FAIL;
    }
    if (is_dir(spec)) {
        *dir = spec;
        return 0;
    }
    if (!hub_is_repo_id(spec)) {
        cli_error("model %s: no such folder, and not a Hub repo id (ORG/NAME[@REVISION])", spec);
        return EXIT_FAIL;
    }
    char repo[256], rev[300];
    hub_split(spec, repo, sizeof repo, rev, sizeof rev);
    if (hub_resolve(ho, repo, rev, 1, out, n)) {
        cli_error("%s", cembed_last_error());
        return EXIT_FAIL;
    }
    *dir = out;
    return 0;
}

int cli_resolve_models(cli_common *c) {
    if (c->resolved_all) return 0;
    const int n = c->n_models ? c->n_models : 1;
    int all_dirs = c->n_models > 0;   /* plain folders need nothing of the Hub's settings */
    for (int i = 0; i < c->n_models; i++) all_dirs &= is_dir(c->model_specs[i]);
    hub_opts ho;
    if (!all_dirs && hub_opts_from_env(&ho)) {
        cli_error("%s", cembed_last_error());
        return EXIT_USAGE;
    }
    for (int i = 0; i < n; i++) {
        const int rc = resolve_one(&ho, c->n_models ? c->model_specs[i] : NULL, c->resolved[i], sizeof c->resolved[i],
                                   &c->model_dirs[i]);
        if (rc) return rc;
    }
    c->n_models = n;
    if (!c->model_specs[0]) c->model_specs[0] = c->model_dirs[0];
    c->model_dir = c->model_dirs[0];
    c->resolved_all = 1;
    return 0;
}

int cli_resolve_model(cli_common *c) {
    if (c->n_models > 1) {
        cli_error("one model, please (got %d): only serve takes several", c->n_models);
        return EXIT_USAGE;
    }
    return cli_resolve_models(c);
}

int cli_open_model(cli_common *c, const cembed_options *o, cembed_model **m) {
    const int rc = cli_resolve_model(c);
    if (rc) return rc;
    if (cembed_model_open(c->model_dir, o, m)) {
        cli_error("cannot open model %s: %s", c->model_dir, cembed_last_error());
        return EXIT_FAIL;
    }
    return 0;
}

const char *cli_prompt(const cli_common *c, const cembed_model *m) {
    const char *p = cembed_prompt(m, c->prompt_name);
    if (!p) {
        cembed_model_info i;
        cembed_model_get_info(m, &i);
        cli_error("--prompt-name %s: the model has no such prompt (%s)", c->prompt_name,
                  *i.prompt_names ? i.prompt_names : "it has none");
    }
    return p;
}

int cli_require_embedding(const cembed_model *m) {
    cembed_model_info i;
    cembed_model_get_info(m, &i);
    if (strcmp(i.kind, "embedding") == 0) return 0;
    cli_error("%s is a reranker: it scores (query, document) pairs and gives no embeddings; use `cembed rerank "
              "--model %s QUERY FILE`", i.name, i.path);
    return -1;
}
