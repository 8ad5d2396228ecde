/* The request pipeline and the HTTP service under allocation failure: the
 * Nth allocation and every one after it fail (in every thread: the request
 * threads, the inference thread, the engine), for every N a whole request
 * makes. Each run must end in a clean answer (200 with the right vectors,
 * or 503), nothing may leak (live bytes back where they were; ASan checks
 * the rest in the sanitizer build), and the next request is answered
 * normally. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "http/http.h"
#include "pipe/pipe.h"
#include "tok/tok.h"
#include "worker/worker.h"
#include "test.h"
#include "tiny_model.h"

static const char BODY[] = "{\"batch_id\":\"b\",\"chunks\":[\"hello world\",{\"id\":7,\"text\":\"a b c\"},"
                           "\"hello world\",\"the quick fox\"]}";

static cembed_model *open_tiny_spec(const char *name, int hidden) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), name);
    const tiny_spec sp = {.vocab = 64, .hidden = hidden, .layers = 2, .heads = 2, .inter = 48, .max_pos = 40,
                          .normalize = 1};
    if (tiny_model_write(dir, &sp, 11) != 0) return NULL;
    cembed_options o = {.threads = 1, .max_batch = 8};
    cembed_model *m = NULL;
    if (cembed_model_open(dir, &o, &m)) return NULL;
    return m;
}

static cembed_model *open_tiny(const char *name) { return open_tiny_spec(name, 32); }

/* The answer up to its usage (whose timings vary from run to run). */
static size_t answer_len_n(const char *a, size_t n) {
    const char *u = a ? memmem(a, n, "\"usage\"", 7) : NULL;
    return u ? (size_t)(u - a) : n;
}
static size_t answer_len(const char *a) { return answer_len_n(a, strlen(a)); }

/* One job as the worker runs it: the whole answer into out. Returns 0 or the refusal. */
static int run_once(pipe_env *e, buf *out) {
    pipe_job j = {.whole_answer = 1};
    int rc = pipe_parse(&j, e, REQ_EMBED, BODY, strlen(BODY));
    if (!rc) rc = pipe_run(&j, PIPE_EMBED, out);
    pipe_free(&j);
    return rc;
}

/* The loop: run once for the reference and the count of allocations, then
 * for every N with the Nth and later allocations failing; each run must give
 * the reference's answer (up to its usage) or 503, and hold nothing after. */
typedef int (*job_fn)(void *ctx, buf *out);
static void every_allocation_fails(cembed_model *m, job_fn run, void *ctx) {
    buf ref = {0}, out = {0};
    CHECK_INT(run(ctx, &ref), 0);
    CHECK(ref.ptr && memmem(ref.ptr, ref.len, "\"embeddings\":[", 14));
    cembed_release_workspace(m);
    cembed_thread_release();
    const size_t live = base_alloc_live_bytes() - ref.cap;
    base_alloc_fail_after(0);
    CHECK_INT(run(ctx, &out), 0);
    const size_t calls = base_alloc_fail_after(0);
    buf_free(&out);
    CHECK(calls > 20);
    int refused = 0;
    for (size_t n = 1; n <= calls + 1; n++) {
        base_alloc_fail_after(n);
        const int rc = run(ctx, &out);
        base_alloc_fail_after(0);
        if (http_status_of(rc) == 503) refused++;
        else if (rc != 0) FAIL_AT("allocation %zu: refusal %d", n, rc);
        else if (answer_len_n(out.ptr, out.len) != answer_len_n(ref.ptr, ref.len) ||
                 memcmp(out.ptr, ref.ptr, answer_len_n(ref.ptr, ref.len)) != 0)
            FAIL_AT("allocation %zu: the answer differs", n);
        buf_free(&out);
        cembed_release_workspace(m);
        cembed_thread_release();
        if (base_alloc_live_bytes() - ref.cap != live)
            FAIL_AT("allocation %zu: %zd bytes still held", n, (ssize_t)(base_alloc_live_bytes() - ref.cap - live));
    }
    CHECK(refused > 0);
    CHECK_INT(run(ctx, &out), 0);
    CHECK(out.len >= answer_len_n(ref.ptr, ref.len) && memcmp(out.ptr, ref.ptr, answer_len_n(ref.ptr, ref.len)) == 0);
    buf_free(&out);
    buf_free(&ref);
}

static int run_pipe(void *ctx, buf *out) { return run_once(ctx, out); }

/* A tiny model and its scheduler; NULL (a failed check) when they cannot be made. */
static sched *tiny_sched(const char *name, cembed_model **m) {
    sched *s = NULL;
    const sched_opts so = {.max_batch = 8, .max_batch_tokens = 1024};
    if (!(*m = open_tiny(name))) FAIL_AT("cannot open the tiny model: %s", cembed_last_error());
    else if (sched_new(*m, &so, &s)) FAIL_AT("cannot start the scheduler: %s", cembed_last_error());
    return s;
}

TEST(pipe_survives_every_allocation_failure) {
    cembed_model *m;
    sched *s = tiny_sched("pipe-tiny", &m);
    if (!s) {
        cembed_model_free(m);
        return;
    }
    pipe_env e;
    const req_limits lim = {.max_items = 100, .max_text_bytes = 1 << 20, .max_depth = 32};
    pipe_env_init(&e, m, s, NULL, &lim);
    every_allocation_fails(m, run_pipe, &e);
    pipe_env_destroy(&e);
    sched_free(s);
    cembed_model_free(m);
}

/* POST /embed over a real socket. Returns the status (0: no answer); the
 * whole response in *resp (malloc'ed, not counted). */
static int post(int port, const char *body, char **resp) {
    *resp = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return close(fd), 0;
    char head[256];
    const int hl = snprintf(head, sizeof head,
                            "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n\r\n", strlen(body));
    if (write(fd, head, (size_t)hl) != hl || write(fd, body, strlen(body)) != (ssize_t)strlen(body)) return close(fd), 0;
    size_t cap = 1 << 16, len = 0;
    char *r = malloc(cap);
    ssize_t got;
    while (r && (got = read(fd, r + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (len + 1 == cap) r = realloc(r, cap *= 2);
    }
    close(fd);
    if (!r) return 0;
    r[len] = 0;
    *resp = r;
    int status = 0;
    sscanf(r, "HTTP/1.1 %d", &status);
    return status;
}

static const char *body_of(const char *resp) {
    const char *b = resp ? strstr(resp, "\r\n\r\n") : NULL;
    return b ? b + 4 : "";
}

/* The chunked answer's first data line: the JSON, as the content reader wrote it in one piece. */
static const char *json_of(const char *resp) {
    const char *b = body_of(resp);
    const char *j = strchr(b, '{');
    return j ? j : b;
}

TEST(http_survives_every_allocation_failure) {
    cembed_model *m = open_tiny("http-tiny");
    if (!m) {
        FAIL_AT("cannot open the tiny model: %s", cembed_last_error());
        return;
    }
    const size_t live0 = base_alloc_live_bytes();
    http_opts o = {.host = "127.0.0.1", .port = 0, .max_body_bytes = 1 << 20, .max_chunks = 100, .max_depth = 32,
                   .max_connections = 64, .max_connections_per_ip = 64, .idle_timeout_s = 10, .header_timeout_s = 10,
                   .sched = {.max_batch = 8, .max_batch_tokens = 1024}};
    http_server *srv;
    CHECK_INT(http_server_start(m, &o, &srv), 0);
    const int port = http_server_port(srv);
    char *ref, *resp;
    CHECK_INT(post(port, BODY, &ref), 200);
    const char *rj = json_of(ref);
    base_alloc_fail_after(0);
    free(resp = NULL);
    CHECK_INT(post(port, BODY, &resp), 200);
    const size_t calls = base_alloc_fail_after(0);
    free(resp);
    CHECK(calls > 20);
    int refused = 0;
    for (size_t n = 1; n <= calls + 1; n++) {
        base_alloc_fail_after(n);
        const int st = post(port, BODY, &resp);
        base_alloc_fail_after(0);
        if (st == 503) {
            refused++;
            if (!strstr(body_of(resp), "\"code\":503")) FAIL_AT("allocation %zu: a 503 without its JSON error", n);
        } else if (st != 200) {
            FAIL_AT("allocation %zu: status %d", n, st);
        } else if (memcmp(json_of(resp), rj, answer_len(rj)) != 0) {
            FAIL_AT("allocation %zu: the answer differs", n);
        }
        free(resp);
        /* and the next request is answered as usual */
        if (post(port, BODY, &resp) != 200 || memcmp(json_of(resp), rj, answer_len(rj)) != 0)
            FAIL_AT("after allocation %zu failed: the next request was not answered right", n);
        free(resp);
    }
    CHECK(refused > 0);
    free(ref);
    http_server_stop(srv);
    cembed_release_workspace(m);
    cembed_thread_release();
    if (base_alloc_live_bytes() != live0)
        FAIL_AT("%zd bytes still held after the server stopped", (ssize_t)(base_alloc_live_bytes() - live0));
    cembed_model_free(m);
}

/* Two models of different sizes behind one scheduler: jobs of both in the
 * queue at once, each vector equal to its model's own, alone. */
TEST(one_scheduler_two_models_of_different_sizes) {
    cembed_model *a = open_tiny_spec("two-a", 32), *b = open_tiny_spec("two-b", 48);
    if (!a || !b) {
        FAIL_AT("cannot open the tiny models: %s", cembed_last_error());
        cembed_model_free(a);
        cembed_model_free(b);
        return;
    }
    cembed_model *models[2] = {a, b};
    sched *s;
    const sched_opts so = {.max_batch = 4, .max_batch_tokens = 1024};
    CHECK_INT(sched_new_multi(models, 2, &so, &s), 0);
    const req_limits lim = {.max_items = 100, .max_text_bytes = 1 << 20, .max_depth = 32};
    pipe_env ea, eb;
    pipe_env_init(&ea, a, s, NULL, &lim);
    pipe_env_init(&eb, b, s, NULL, &lim);
    pipe_job j[6];
    for (int i = 0; i < 6; i++) {
        j[i] = (pipe_job){0};
        CHECK_INT(pipe_parse(&j[i], i % 2 ? &eb : &ea, REQ_EMBED, BODY, strlen(BODY)), 0);
        CHECK_INT(pipe_prepare(&j[i], PIPE_EMBED), 0);
        CHECK_INT(pipe_submit(&j[i]), 0);
    }
    /* all done before the references: a model's embed calls must not overlap the scheduler's */
    for (int i = 0; i < 6; i++) pipe_wait(&j[i]);
    for (int i = 0; i < 6; i++) {
        cembed_model *m = i % 2 ? b : a;
        const size_t H = i % 2 ? 48 : 32;
        for (size_t k = 0; k < j[i].req.n_items; k++) {
            float alone[48];
            const int32_t *ids[1] = {j[i].ids[k]};
            CHECK_INT(cembed_embed_ids_ex(m, ids, &j[i].n_ids[k], 1, alone, 0), 0);
            float d = 0;
            for (size_t t = 0; t < H; t++) d = fmaxf(d, fabsf(alone[t] - j[i].vec[k * H + t]));
            if (d > 1e-6f) FAIL_AT("job %d item %zu: %g from its model alone", i, k, d);
        }
        pipe_free(&j[i]);
    }
    pipe_env_destroy(&ea);
    pipe_env_destroy(&eb);
    sched_free(s);
    cembed_model_free(a);
    cembed_model_free(b);
}

/* The worker's whole job (parse, embed, answer, result key) under the same
 * loop. */
typedef struct worker_ctx {
    const worker_env *env;
    const worker_opts *o;
} worker_ctx;

static int run_worker(void *ctx, buf *out) {
    const worker_ctx *w = ctx;
    buf key = {0}, bid = {0};
    char reason[512];
    const int rc = worker_embed_body(w->env, w->o, "1-0", BODY, strlen(BODY), out, &key, &bid, reason, sizeof reason);
    buf_free(&key);
    buf_free(&bid);
    return rc;
}

TEST(worker_job_survives_every_allocation_failure) {
    cembed_model *m;
    sched *s = tiny_sched("worker-tiny", &m);
    if (!s) {
        cembed_model_free(m);
        return;
    }
    const worker_env env = {.m = m, .s = s};
    const worker_opts o = {.result_prefix = "cembed:result:", .max_chunks = 100, .max_body_bytes = 1 << 20,
                           .max_depth = 32};
    worker_ctx w = {&env, &o};
    every_allocation_fails(m, run_worker, &w);
    sched_free(s);
    cembed_model_free(m);
}

/* /tokenize's offsets (tokens.c) with a byte-level BPE tokenizer written
 * here: GPT-2's 256 byte characters and the merges of " hello" and "wor",
 * so a text's tokens are whole words, bytes of a word the merges do not
 * make, and the bytes of a character outside ASCII, each of which spans that
 * character; the spans are what Hugging Face's tokenizers (npm "tokenizers")
 * answer for the same tokenizer.json and text. */
static void write_byte_level(const char *dir) {
    buf b = {0};
    buf_printf(&b, "{\"model\":{\"type\":\"BPE\",\"vocab\":{");
    int id = 0;
    for (int c = 0, n = 0; c < 256; c++) { /* GPT-2's map: printable bytes as themselves, the rest from U+0100 */
        const int self = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        char u[8];
        const int len = utf8_encode(self ? (uint32_t)c : 0x100u + (uint32_t)n++, u);
        u[len] = 0;
        buf_printf(&b, "%s\"%s%s\":%d", id ? "," : "", c == '"' || c == '\\' ? "\\" : "", u, id);
        id++;
    }
    const char *merged[] = {"\\u0120h", "\\u0120he", "\\u0120hel", "\\u0120hell", "\\u0120hello", "wo", "wor"};
    for (size_t i = 0; i < CE_ARRAY_LEN(merged); i++) buf_printf(&b, ",\"%s\":%d", merged[i], id++);
    buf_printf(&b, "},\"merges\":[\"\\u0120 h\",\"\\u0120h e\",\"\\u0120he l\",\"\\u0120hel l\",\"\\u0120hell o\",\"w o\","
                   "\"wo r\"]},\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,"
                   "\"use_regex\":true},\"normalizer\":null,\"post_processor\":null,\"decoder\":null,\"added_tokens\":[]}");
    test_write_file(dir, "tokenizer.json", b.ptr);
    buf_free(&b);
}

TEST(tokens_offsets_byte_level) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bytelevel", test_tmpdir());
    const tiny_spec sp = {.vocab = 264, .hidden = 32, .layers = 1, .heads = 2, .inter = 48, .max_pos = 40};
    CHECK_INT(tiny_model_write(dir, &sp, 5), 0);
    write_byte_level(dir);   /* read before vocab.txt */
    cembed_options o = {.threads = 1, .max_batch = 4};
    pipe_env e;
    memset(&e, 0, sizeof e);
    CHECK_INT(cembed_model_open(dir, &o, &e.m), 0);
    pthread_mutex_init(&e.tok_mu, NULL);
    e.info.path = dir;
    e.info.cls_id = e.info.sep_id = -1;
    pipe_tokens_load(&e);
    CHECK_INT(e.tok_bytes, 1);
    const char *text = "hello hello world\tcaf\xc3\xa9!";   /* café: é is two bytes, two tokens */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_INT(cembed_tokenize(e.m, text, strlen(text), &ids, &n, NULL, NULL), 0);
    /* hello | " hello" | " " | "wor" | l | d | \t | c | a | f | (é: 2 bytes) | ! */
    const uint32_t want[][2] = {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 11}, {11, 12}, {12, 15}, {15, 16},
                                {16, 17}, {17, 18}, {18, 19}, {19, 20}, {20, 21}, {21, 22}, {21, 22}, {22, 23}};
    CHECK_INT(n, CE_ARRAY_LEN(want));
    uint32_t(*span)[4] = calloc(n, sizeof *span);
    void *scratch = malloc(pipe_tokens_scratch(&e, strlen(text)));
    pipe_tokens_align(&e, text, strlen(text), ids, n, 0, span, scratch);
    for (size_t k = 0; k < n && k < CE_ARRAY_LEN(want); k++) {
        CHECK_INT(span[k][0], want[k][0]);
        CHECK_INT(span[k][1], want[k][1]);
    }
    /* from the end backwards (a text cut from the left) gives the same spans */
    pipe_tokens_align(&e, text, strlen(text), ids, n, 1, span, scratch);
    for (size_t k = 0; k < n && k < CE_ARRAY_LEN(want); k++) {
        CHECK_INT(span[k][0], want[k][0]);
        CHECK_INT(span[k][1], want[k][1]);
    }
    buf b = {0};
    CHECK_INT(pipe_tokens_write(&b, &e, text, ids, n, (const uint32_t(*)[4])span), 0);
    CHECK_CONTAINS(b.ptr, "\"text\":\" hello\",\"special\":false,\"start\":5,\"stop\":11}");
    CHECK_CONTAINS(b.ptr, "\"text\":\"\xc3\xa9\",\"special\":false,\"start\":21,\"stop\":22}");
    buf_free(&b);
    free(span);
    free(scratch);
    cembed_free(ids);
    pthread_mutex_destroy(&e.tok_mu);
    cembed_model_free(e.m);
}

/* pipe_item_key (key.c): the bytes each kind of item hashes, as stored in
 * the persistent cache; a change here loses every cached vector. */
TEST(pipe_item_key_bytes) {
    pipe_env e = {0};
    memset(&e.scope, 0x5a, sizeof e.scope);
    char text[] = "hello";
    int32_t ids[] = {101, 7592, 102};
    req_item items[2] = {{.text = text, .text_len = 5}, {.ids = ids, .n_ids = 3}};
    int32_t *id_rows[2] = {ids, ids};
    size_t n_ids[2] = {3, 3};
    int truncated[2] = {0, 0};
    pipe_job j = {.e = &e, .ids = id_rows, .n_ids = n_ids, .truncated = truncated};
    j.req.kind = REQ_EMBED;
    j.req.items = items;
    j.req.n_items = 2;
    uint8_t got[CACHE_KEY_BYTES], want[CACHE_KEY_BYTES];
    CHECK_INT(pipe_item_key(&j, 0, got), 0);   /* a text: itself */
    cache_key(&e.scope, "hello", 5, want);
    CHECK(memcmp(got, want, sizeof got) == 0);
    truncated[0] = 1;   /* cut from the right: the same key; from the left: another */
    CHECK_INT(pipe_item_key(&j, 0, got), 0);
    CHECK(memcmp(got, want, sizeof got) == 0);
    j.req.truncate_left = 1;
    CHECK_INT(pipe_item_key(&j, 0, got), 0);
    cache_key(&e.scope, "\xff\xfdlefthello", 11, want);
    CHECK(memcmp(got, want, sizeof got) == 0);
    CHECK_INT(pipe_item_key(&j, 1, got), 0);   /* token ids */
    char idb[5 + sizeof ids];
    memcpy(idb, "\xff\xfeids", 5);
    memcpy(idb + 5, ids, sizeof ids);
    cache_key(&e.scope, idb, sizeof idb, want);
    CHECK(memcmp(got, want, sizeof got) == 0);
    char query[] = "q?";
    j.req.kind = REQ_RERANK;   /* a pair: marker, the query's length, the query, the side, the document */
    j.req.query = query;
    j.req.query_len = 2;
    CHECK_INT(pipe_item_key(&j, 0, got), 0);
    const uint64_t ql = 2;
    char pair[6 + 8 + 2 + 1 + 5];
    memcpy(pair, "\xff\xfcpair", 6);
    memcpy(pair + 6, &ql, 8);
    memcpy(pair + 14, "q?L", 3);
    memcpy(pair + 17, "hello", 5);
    cache_key(&e.scope, pair, sizeof pair, want);
    CHECK(memcmp(got, want, sizeof got) == 0);
}
