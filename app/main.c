/* cembed: the command line. Dispatches to one file per subcommand; this
 * directory is the only place that exits the process. */
#include <errno.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fputs("usage: cembed COMMAND [ARGS]      (cembed COMMAND --help, or cembed help COMMAND: its flags)\n"
          "\n"
          "commands:\n"
          "  pull      ORG/NAME[@REVISION]\n"
          "            download a model from the Hugging Face Hub into its cache ($HF_HUB_CACHE);\n"
          "            HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE=1 as in Python's huggingface_hub\n"
          "  serve     [--model M]... [--host H] [--port P] [--threads N] [--batch-size N]\n"
          "            [--precision P] [--gemm B] [--max-seq-len N] [--api-key KEY]... [--api-key-file FILE]\n"
          "            HTTP service: POST /embed, /v1/embeddings, /tokenize, /embed_all, /similarity, /rerank, /v1/rerank;\n"
          "            POST / (TEI's root: by the body); GET /health, /info, /metrics, /v1/models\n"
          "  embed     [--model M] [-o OUT] [--format jsonl|npy] [--cache PATH | --no-cache] [--prompt-name P]\n"
          "            [--chunk-tokens N] [--chunk-lines N] [--overlap N] [--max-file-bytes N] [--list-files] PATH...\n"
          "            chunk and embed source files and folders (.gitignore honoured); writes\n"
          "            {\"id\": \"path:start-end\", \"path\", \"start_line\", \"end_line\", \"tokens\",\n"
          "            \"embedding\"} lines; vectors are cached ($EMBEDDING_CACHE, off to disable)\n"
          "  embed     [--model M] [--batch-size N] [--threads N] [--max-seq-len N] [--jsonl] FILE.jsonl|-\n"
          "            embed JSON lines {\"id\", \"text\"} (or bare strings); writes\n"
          "            {\"id\", \"embedding\"} lines to stdout in input order\n"
          "  worker    [--model M] --redis URL [--stream S] [--group G] [--consumer C]\n"
          "            [--claim-idle-ms N] [--max-deliveries N] [--result-ttl S]\n"
          "            embed jobs from a Redis Stream (consumer group); results by batch_id\n"
          "  enqueue   --redis URL [--stream S] FILE.json|-   add one /embed body as a job\n"
          "  result    --redis URL [--wait [--timeout S]] [--int | --entry] BATCH_ID   print a job's answer\n"
          "  cache     stats|prune|clear [--cache PATH] [--max-mb N]\n"
          "            the persistent vector cache: its size, evict to a size, empty it\n"
          "  tokenize  [--model M] [--max-seq-len N] FILE.jsonl|-   write {\"id\", \"ids\"} lines\n"
          "  rerank    [--model M] [--raw-scores] [--top-n N] QUERY FILE.jsonl|-\n"
          "            score each document against QUERY with a cross-encoder; {\"index\", \"id\", \"score\"}\n"
          "            lines, best first (score: the sigmoid of the logit, or the logit with --raw-scores)\n"
          "  info      [--model M]                   print the model's facts\n"
          "  convert   --from tfjs SRC_DIR OUT_DIR [--max-seq-length N]\n"
          "            import a TF.js graph model into a Hugging Face directory\n"
          "  help      [COMMAND]                     this text, or a command's flags and variables\n"
          "\n"
          "--model takes a folder or a Hub repo id (ORG/NAME[@REVISION], downloaded on first use);\n"
          "it defaults to $EMBEDDING_MODEL, else " DEFAULT_MODEL_REPO " from the Hub cache, else\n"
          "the copy scripts/fetch-model.sh puts in $XDG_DATA_HOME/cembed/models.\n"
          "Threads default to $EMBEDDING_THREADS, else min(usable CPUs, 8).\n"
          "Every command that runs the model takes --precision fp32|bf16|int8 ($EMBEDDING_PRECISION;\n"
          "int8 on CPUs with AVX2, else fp32), --gemm auto|onednn|avx2|scalar|blas ($EMBEDDING_GEMM)\n"
          "and --max-seq-len N (lower the model's truncation limit).\n",
          f);
}

/* `cembed help [COMMAND]`. */
static int help_cmd(int argc, char **argv) {
    if (argc < 2) {
        usage(stdout);
        return EXIT_OK;
    }
    if (cli_help(argv[1], stdout) == 0) return EXIT_OK;
    cli_error("no command \"%s\" (cembed help lists them)", argv[1]);
    return EXIT_USAGE;
}

/* What a command printed must have been written: stdout is flushed here,
 * once for every command, and a failed write (a full disk, a closed pipe)
 * is an error with its cause, exit 1 (it was exit 0, or 1 without a word). */
static int finish_stdout(int rc) {
    errno = 0;
    const int flushed = fflush(stdout) == 0;
    const int e = errno;
    if (flushed && (!ferror(stdout) || rc != EXIT_OK)) return rc;   /* a command that failed said why */
    cli_error("cannot write the output (stdout): %s", e ? strerror(e) : "a write failed");
    return rc == EXIT_OK ? EXIT_FAIL : rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    base_alloc_install_json();
    const char *cmd = argv[1];
    int rc;
    if (cli_wants_help(argc - 1, argv + 1) && cli_help(cmd, stdout) == 0) rc = EXIT_OK;
    else if (strcmp(cmd, "help") == 0) rc = help_cmd(argc - 1, argv + 1);
    else if (strcmp(cmd, "embed") == 0) rc = cmd_embed(argc - 1, argv + 1);
    else if (strcmp(cmd, "tokenize") == 0) rc = cmd_tokenize(argc - 1, argv + 1);
    else if (strcmp(cmd, "rerank") == 0) rc = cmd_rerank(argc - 1, argv + 1);
    else if (strcmp(cmd, "info") == 0) rc = cmd_info(argc - 1, argv + 1);
    else if (strcmp(cmd, "convert") == 0) rc = cmd_convert(argc - 1, argv + 1);
    else if (strcmp(cmd, "serve") == 0) rc = cmd_serve(argc - 1, argv + 1);
    else if (strcmp(cmd, "cache") == 0) rc = cmd_cache(argc - 1, argv + 1);
    else if (strcmp(cmd, "worker") == 0) rc = cmd_worker(argc - 1, argv + 1);
    else if (strcmp(cmd, "enqueue") == 0) rc = cmd_enqueue(argc - 1, argv + 1);
    else if (strcmp(cmd, "result") == 0) rc = cmd_result(argc - 1, argv + 1);
    else if (strcmp(cmd, "pull") == 0) rc = cmd_pull(argc - 1, argv + 1);
    else if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("cembed %s\n", CEMBED_VERSION);
        rc = EXIT_OK;
    } else if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        rc = EXIT_OK;
    } else {
        cli_error("unknown command \"%s\"", cmd);
        usage(stderr);
        rc = EXIT_USAGE;
    }
    exit(finish_stdout(rc));
}
