/*
 * bench/arch_peers/llama_last.c: llama.cpp's best configuration for a decoder
 * embedder (Qwen2 / Qwen3, last-token pooling), one sequence per llama_decode.
 *
 * The shared harness (bench-peers/bench_llamacpp.c) times pooling NONE with
 * its own context sizes and cannot turn flash attention on; at 8,192 tokens
 * that is a 8k x 8k score matrix per head and it did not finish. This caller
 * loads the GGUF once, makes a context with n_ctx = n_batch = n_ubatch = the
 * longest sequence (one ubatch per sequence), flash attention as asked (on by
 * default), embeddings on and llama.cpp's own LAST pooling, then for every
 * sequence of the id file clears the memory, decodes it (every token an
 * output, as pooling needs) and reads llama_get_embeddings_seq. A short
 * untimed warm-up decode (the first --warmup ids of the first sequence) faults
 * the mapped weights in and starts the thread pool; the timed part is the
 * decodes of all sequences. Prints one JSON line on stdout (tokens_per_s as
 * bench/arch_peers/table.py reads it) and writes the pooled vectors, float32
 * row after row, to --out.
 *
 *   llama_last --model M.gguf --ids IDS.jsonl [--threads 2] [--flash on|off|auto]
 *              [--warmup 32] [--out V.f32]
 *
 * IDS.jsonl: one {"id": ..., "ids": [..]} a line (bench/arch_peers/make_ids.py).
 * Built by bench/arch_peers/decoders.sh against $LLAMA_BUILD; -DLLAMA_FEB2025
 * selects the Feb 2025 API (bool flash_attn, llama_kv_cache_clear).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama.h"

struct seqs {
	llama_token **ids;
	int *len;
	int n, max;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

/* one line's "ids": [..] into a new array; the count, or -1 */
static int parse_ids(const char *line, size_t n, llama_token **out)
{
	const char *p = strstr(line, "\"ids\"");
	if (!p || !(p = memchr(p, '[', n - (size_t)(p - line))))
		return -1;
	int cap = 1024, k = 0;
	llama_token *v = malloc(cap * sizeof *v);
	if (!v)
		return -1;
	for (p++;;) {
		char *end;
		long x = strtol(p, &end, 10);
		if (end == p)
			break;
		if (k == cap) {
			llama_token *w = realloc(v, (cap *= 2) * sizeof *v);
			if (!w)
				goto fail;
			v = w;
		}
		v[k++] = (llama_token)x;
		for (p = end; *p == ' ' || *p == ','; p++)
			;
	}
	*out = v;
	return k;
fail:
	free(v);
	return -1;
}

static int read_ids(const char *path, struct seqs *s)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	if (!f)
		return -1;
	memset(s, 0, sizeof *s);
	while ((n = getline(&line, &cap, f)) > 0) {
		if (!strstr(line, "\"ids\""))
			continue;
		s->ids = realloc(s->ids, (s->n + 1) * sizeof *s->ids);
		s->len = realloc(s->len, (s->n + 1) * sizeof *s->len);
		if (!s->ids || !s->len)
			break;
		int k = parse_ids(line, (size_t)n, &s->ids[s->n]);
		if (k <= 0)
			break;
		s->len[s->n] = k;
		if (k > s->max)
			s->max = k;
		s->n++;
	}
	int bad = !feof(f);
	free(line);
	fclose(f);
	return bad || s->n == 0 ? -1 : 0;
}

static void clear_memory(struct llama_context *ctx)
{
#ifdef LLAMA_FEB2025
	llama_kv_cache_clear(ctx);
#else
	llama_memory_clear(llama_get_memory(ctx), true);
#endif
}

/* decodes ids[0..n) as sequence 0, every token an output; 0 or -1 */
static int decode(struct llama_context *ctx, struct llama_batch *b, const llama_token *ids, int n)
{
	clear_memory(ctx);
	b->n_tokens = n;
	for (int i = 0; i < n; i++) {
		b->token[i] = ids[i];
		b->pos[i] = i;
		b->n_seq_id[i] = 1;
		b->seq_id[i][0] = 0;
		b->logits[i] = 1;
	}
	return llama_decode(ctx, *b) == 0 ? 0 : -1;
}

static struct llama_context *make_ctx(struct llama_model *m, int n, int threads, const char *flash)
{
	struct llama_context_params cp = llama_context_default_params();
	cp.n_ctx = cp.n_batch = cp.n_ubatch = (uint32_t)n;
	cp.n_seq_max = 1;
	cp.n_threads = cp.n_threads_batch = threads;
	cp.embeddings = true;
	cp.pooling_type = LLAMA_POOLING_TYPE_LAST;
#ifdef LLAMA_FEB2025
	cp.flash_attn = strcmp(flash, "off") != 0;
#else
	cp.flash_attn_type = !strcmp(flash, "on") ? LLAMA_FLASH_ATTN_TYPE_ENABLED :
			     !strcmp(flash, "off") ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
#endif
	return llama_init_from_model(m, cp);
}

/* the timed decodes of every sequence; vectors to out (may be NULL) */
static int run_all(struct llama_context *ctx, struct llama_batch *b, const struct seqs *s, int dims,
		   FILE *out, double *secs)
{
	double t = 0;
	for (int i = 0; i < s->n; i++) {
		double t0 = now_s();
		if (decode(ctx, b, s->ids[i], s->len[i]))
			return fprintf(stderr, "llama_last: decode of sequence %d failed\n", i), -1;
		const float *e = llama_get_embeddings_seq(ctx, 0);
		t += now_s() - t0;
		if (!e)
			return fprintf(stderr, "llama_last: no pooled embedding for sequence %d\n", i), -1;
		if (out && fwrite(e, sizeof *e, (size_t)dims, out) != (size_t)dims)
			return fprintf(stderr, "llama_last: cannot write the vectors\n"), -1;
		fprintf(stderr, "llama_last: sequence %d: %d tokens, %.2f s\n", i, s->len[i], now_s() - t0);
	}
	*secs = t;
	return 0;
}

int main(int argc, char **argv)
{
	const char *model = NULL, *ids = NULL, *outp = NULL, *flash = "on";
	int threads = 2, warm = 32, rc = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--model")) model = v;
		else if (!strcmp(k, "--ids")) ids = v;
		else if (!strcmp(k, "--out")) outp = v;
		else if (!strcmp(k, "--flash")) flash = v;
		else if (!strcmp(k, "--threads")) threads = atoi(v);
		else if (!strcmp(k, "--warmup")) warm = atoi(v);
		else return fprintf(stderr, "llama_last: unknown option %s\n", k), 2;
	}
	if (!model || !ids)
		return fprintf(stderr, "usage: llama_last --model M.gguf --ids IDS.jsonl [--threads T] "
				       "[--flash on|off|auto] [--warmup N] [--out V.f32]\n"), 2;
	struct seqs s;
	if (read_ids(ids, &s))
		return fprintf(stderr, "llama_last: cannot read %s\n", ids), 1;
	llama_backend_init();
	double t0 = now_s(), secs = 0;
	struct llama_model_params mp = llama_model_default_params();
	struct llama_model *m = llama_model_load_from_file(model, mp);
	struct llama_context *ctx = m ? make_ctx(m, s.max, threads, flash) : NULL;
	struct llama_batch b = llama_batch_init(s.max, 0, 1);
	FILE *out = NULL;
	if (!ctx) {
		fprintf(stderr, "llama_last: cannot load %s\n", model);
		goto fail;
	}
	int dims = llama_model_n_embd(m);
	if (warm > 0 && decode(ctx, &b, s.ids[0], warm < s.len[0] ? warm : s.len[0])) {
		fprintf(stderr, "llama_last: warm-up decode failed\n");
		goto fail;
	}
	double setup = now_s() - t0;
	if (outp && !(out = fopen(outp, "wb"))) {
		fprintf(stderr, "llama_last: cannot write %s\n", outp);
		goto fail;
	}
	if (run_all(ctx, &b, &s, dims, out, &secs))
		goto fail;
	long tokens = 0;
	for (int i = 0; i < s.n; i++)
		tokens += s.len[i];
	char desc[128];
	llama_model_desc(m, desc, sizeof desc);
	printf("{\"peer\": \"llama.cpp\", \"tool\": \"llama_last\", \"model_desc\": \"%s\", \"flash\": \"%s\", "
	       "\"pooling\": \"last\", \"n_ctx\": %d, \"threads\": %d, \"sequences\": %d, \"tokens\": %ld, "
	       "\"warmup_tokens\": %d, \"setup_seconds\": %.3f, \"seconds\": %.3f, \"tokens_per_s\": %.1f}\n",
	       desc, flash, s.max, threads, s.n, tokens, warm, setup, secs, tokens / secs);
	rc = 0;
fail:
	if (out && fclose(out))
		rc = 1;
	llama_batch_free(b);
	if (ctx)
		llama_free(ctx);
	if (m)
		llama_model_free(m);
	llama_backend_free();
	return rc;
}
