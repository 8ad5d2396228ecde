/* `cembed COMMAND --help` and `cembed help COMMAND`: each command's flags
 * and the environment variables that set them (flag > variable > default).
 * One text per command, kept beside the parsers in app/; the top-level
 * usage in main.c lists the commands and points here. */
#include <string.h>

#include "cli.h"
#include "options.h"

#define MODEL_FLAGS                                                                                         \
    "  --model M             a model folder or a Hub repo id ORG/NAME[@REVISION] (EMBEDDING_MODEL;\n"       \
    "                        default: " DEFAULT_MODEL_REPO " from the Hub cache, else the copy\n"          \
    "                        scripts/fetch-model.sh put in $XDG_DATA_HOME/cembed/models)\n"                 \
    "  --threads N           compute threads (EMBEDDING_THREADS; min(usable CPUs, 8))\n"                      \
    "  --precision P         fp32, bf16 or int8 (EMBEDDING_PRECISION; int8 with AVX2, else fp32)\n"         \
    "  --gemm B              auto, onednn, avx2, scalar or blas (EMBEDDING_GEMM; auto)\n"                    \
    "  --max-seq-len N       lower the model's truncation limit\n"

#define HUB_VARS                                                                                            \
    "  HF_HUB_CACHE, HF_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=1   the Hub client, as huggingface_hub\n" \
    "  HF_HUB_DOWNLOAD_TIMEOUT=S   seconds to connect, and of a transfer under 1 KB/s, before it fails (10)\n"

/* text, then the settings of the commands in vars (options.c: the EMBEDDING_* variables) */
typedef struct help {
    const char *cmd, *text;
    unsigned vars;
} help;

static const help helps[] = {
    {"serve",
     "usage: cembed serve [flags]\n"
     "The HTTP service: POST /embed, /v1/embeddings, /tokenize, /embed_all, /similarity, /rerank,\n"
     "/v1/rerank (a reranker's), / (TEI's root: by the body, embed, similarity or rerank);\n"
     "GET /health, /info, /metrics, /v1/models. SIGTERM drains, SIGHUP reloads the API key file.\n"
     "\nflags:\n" MODEL_FLAGS
     "                        (--model repeated, or a comma list in EMBEDDING_MODEL: several models)\n"
     "  --batch-size N        sequences per forward pass (EMBEDDING_MAX_BATCH_SIZE)\n"
     "  --host H              listen address (EMBEDDING_HOST; 127.0.0.1)\n"
     "  --port P              listen port (EMBEDDING_PORT)\n"
     "  --api-key KEY         a key requests must send as \"Authorization: Bearer KEY\" (repeatable;\n"
     "                        EMBEDDING_API_KEY, a comma list)\n"
     "  --api-key-file FILE   one key per line, # comments; reloaded on SIGHUP (EMBEDDING_API_KEY_FILE)\n"
     "  --help                this text\n"
     "\nenvironment:\n" HUB_VARS,
     OPT_SERVE},
    {"embed",
     "usage: cembed embed [flags] PATH...          chunk and embed source files and folders\n"
     "       cembed embed [flags] FILE.jsonl|-     embed JSON lines {\"id\", \"text\"} (or bare strings)\n"
     "JSON lines input is used when every PATH is -, *.jsonl or *.ndjson, or with --jsonl.\n"
     "\nflags:\n" MODEL_FLAGS
     "  --batch-size N        sequences per forward pass (32)\n"
     "  --prompt-name P       a prompt of the model's config_sentence_transformers.json (its default)\n"
     "  --jsonl               read PATHs as JSON lines\n"
     "  -o, --output OUT      write to OUT instead of stdout (a folder with --format npy)\n"
     "  --format jsonl|npy    npy: OUT/vectors.npy and OUT/metadata.jsonl (source trees only)\n"
     "  --cache PATH          the vector cache (EMBEDDING_CACHE; ~/.cache/cembed/cache.sqlite)\n"
     "  --no-cache            no cache (EMBEDDING_CACHE=off)\n"
     "  --chunker syntax|lines  syntax (where a grammar is built in, see `cembed info`): functions, classes,\n"
     "                        methods whole when they fit, else split at their children with the enclosing\n"
     "                        signatures as context; lines: windows of lines\n"
     "  --chunk-tokens N      tokens per window (the model's limit less 2)\n"
     "  --chunk-lines N       lines per window (80)\n"
     "  --overlap N           lines shared by consecutive windows (0)\n"
     "  --max-file-bytes N    larger files are skipped (1048576)\n"
     "  --list-files          print the files that would be embedded, and stop\n"
     "  --help                this text\n"
     "\nenvironment:\n" HUB_VARS,
     OPT_EMBED},
    {"tokenize",
     "usage: cembed tokenize [flags] FILE.jsonl|-\n"
     "Writes {\"id\", \"ids\"} lines: the model's token ids of each text.\n"
     "\nflags:\n" MODEL_FLAGS "  --help                this text\n"
     "\nenvironment:\n" HUB_VARS, OPT_TOKENIZE},
    {"rerank",
     "usage: cembed rerank [flags] QUERY FILE.jsonl|-\n"
     "Scores each record of FILE ({\"id\", \"text\"} or bare strings, one per line) against QUERY with a\n"
     "reranker (a cross-encoder) and writes {\"index\", \"id\", \"score\"} lines, best first.\n"
     "\nflags:\n" MODEL_FLAGS
     "  --batch-size N        pairs per forward pass (32)\n"
     "  --top-n N             write only the N best\n"
     "  --raw-scores          the model's logit, not its sigmoid\n"
     "  --help                this text\n"
     "\nenvironment:\n" HUB_VARS, OPT_RERANK},
    {"info",
     "usage: cembed info [flags]\n"
     "Prints the model's facts and what runs on this CPU as JSON.\n"
     "\nflags:\n" MODEL_FLAGS "  --help                this text\n"
     "\nenvironment:\n" HUB_VARS, OPT_INFO},
    {"pull",
     "usage: cembed pull ORG/NAME[@REVISION]\n"
     "Downloads a model from the Hugging Face Hub into its cache and prints the snapshot folder.\n"
     "REVISION is a branch, a tag or a commit id.\n"
     "\nflags:\n  --help                this text\n"
     "\nenvironment:\n" HUB_VARS, 0},
    {"worker",
     "usage: cembed worker [flags]\n"
     "Embeds jobs (POST /embed bodies) from a Redis Stream, in a consumer group.\n"
     "\nflags:\n" MODEL_FLAGS
     "  --batch-size N        sequences per forward pass\n"
     "  --redis URL           redis://[:PASSWORD@]HOST[:PORT][/DB] (EMBEDDING_REDIS_URL)\n"
     "  --stream S            the jobs' stream (EMBEDDING_STREAM; cembed:jobs)\n"
     "  --group G             the consumer group (EMBEDDING_GROUP; cembed)\n"
     "  --consumer C          this worker's name (EMBEDDING_CONSUMER; HOST-PID)\n"
     "  --claim-idle-ms N     claim jobs idle this long (EMBEDDING_CLAIM_IDLE_MS)\n"
     "  --max-deliveries N    then a failing job goes to cembed:dead (EMBEDDING_MAX_DELIVERIES)\n"
     "  --result-ttl S        seconds a result is kept (EMBEDDING_RESULT_TTL)\n"
     "  --help                this text\n"
     "\nenvironment:\n" HUB_VARS,
     OPT_WORKER},
    {"enqueue",
     "usage: cembed enqueue [flags] FILE.json|-\n"
     "Adds one POST /embed body as a job and prints its entry id.\n"
     "\nflags:\n"
     "  --redis URL           (EMBEDDING_REDIS_URL)\n"
     "  --stream S            (EMBEDDING_STREAM; cembed:jobs)\n"
     "  --help                this text\n", OPT_ENQUEUE},
    {"result",
     "usage: cembed result [flags] BATCH_ID\n"
     "Prints a job's answer (what POST /embed would answer).\n"
     "\nflags:\n"
     "  --redis URL           (EMBEDDING_REDIS_URL)\n"
     "  --wait                until it is there\n"
     "  --timeout S           how long --wait waits (exit 3 when it is not there)\n"
     "  --int                 BATCH_ID is an integer batch_id\n"
     "  --entry               BATCH_ID is the job's entry id (a job without batch_id)\n"
     "  --help                this text\n", OPT_RESULT},
    {"cache",
     "usage: cembed cache stats|prune|clear [flags]\n"
     "The persistent vector cache: its size and integrity, evict to a size and vacuum, empty it.\n"
     "\nflags:\n"
     "  --cache PATH          (EMBEDDING_CACHE; ~/.cache/cembed/cache.sqlite)\n"
     "  --max-mb N            prune to this many MB of vectors (EMBEDDING_CACHE_MAX_MB)\n"
     "  --help                this text\n",
     OPT_CACHE},
    {"convert",
     "usage: cembed convert --from tfjs SRC_DIR OUT_DIR [flags]\n"
     "Imports a TF.js graph model into a Hugging Face folder (F32 model.safetensors, config.json,\n"
     "tokenizer.json and the sentence-transformers files).\n"
     "\nflags:\n"
     "  --from tfjs           the source format\n"
     "  --max-seq-length N    the sentence-transformers max_seq_length to write\n"
     "  --help                this text\n", 0},
};

int cli_help(const char *cmd, FILE *f) {
    for (size_t i = 0; i < sizeof helps / sizeof *helps; i++)
        if (strcmp(cmd, helps[i].cmd) == 0) {
            fputs(helps[i].text, f);
            if (helps[i].vars) opt_help(helps[i].vars, f);
            return 0;
        }
    if (strcmp(cmd, "variables") == 0) { /* the README's table */
        opt_table(f);
        return 0;
    }
    return -1;
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return 0;   /* what follows are file names */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    }
    return 0;
}
