/*
 * embed_ids: runs llama.cpp (libllama) on given token id sequences and prints
 * what it computes, as the second, independent oracle for cembed's encoders.
 *
 * No tokenizer is involved: each input line is
 *     TYPE1_FROM ID ID ID ...
 * (TYPE1_FROM = index of the first token of segment B, or -1 for none), and
 * each output line is one JSON object for that sequence:
 *     {"pooled": [...]}        pooling from the GGUF (mean / cls)
 *     {"logits": [x]}          pooling RANK (cross-encoder classifier head)
 *     {"tokens": [[...], ...]} with -t: pooling NONE, every token's state
 * Every sequence is decoded alone (its own batch, sequence 0, positions
 * 0..n-1, the KV cache cleared before it), so nothing couples sequences.
 *
 * Token types: at the pinned llama.cpp, llama_batch has no token-type field
 * and build_bert adds row 0 of token_types to every token.  For a pair on a
 * model with type_vocab_size > 1 this program therefore feeds input
 * embeddings instead of ids: word[id] + type[t] - type[0], read from the same
 * GGUF, so that after llama.cpp adds type[0] the sum is word[id] + type[t];
 * position embeddings, norms, attention and the rest stay llama.cpp's.  Such
 * lines get "via_embd": true.
 *
 * The context (and ubatch) is -c tokens, default min(n_ctx_train, 512): a
 * non-causal graph reserves n_ubatch^2 attention scores per head.
 *
 * Builds against the pinned llama.cpp (2025-02) and against newer trees:
 * build.sh defines EMBED_MEMORY_API where llama.h has llama_memory_clear
 * (llama_kv_cache_clear is gone there), EMBED_CLS_OUT where it has
 * llama_model_n_cls_out (a RANK head with several labels) and
 * EMBED_FLASH_ATTN_TYPE where flash attention is on by default ("auto"): it
 * is turned off, because the CPU flash-attention path rounds K and V to fp16
 * and this is an F32 oracle (-f turns it back on).
 *
 * Decoders (qwen2, qwen3): the K and V cache is F32 (llama.cpp's default F16
 * would round them); -P POOLING sets the pooling type where the tree does not
 * read it from the GGUF for that architecture (the 2025-02 tree's qwen2:
 * -P 3 = LAST) and -N makes the attention non-causal with
 * llama_set_causal_attn (gte-Qwen2's "is_causal": false).
 *
 * usage: embed_ids [-t] [-f] [-N] [-P POOLING] [-j THREADS] [-c CTX] MODEL.gguf IDS.txt > OUT.jsonl
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

#define MAX_IDS 8192

struct seq {
	int type1_from;
	int n;
	llama_token ids[MAX_IDS];
};

/* The word and token-type tables, for feeding pairs as embeddings. */
struct tables {
	struct ggml_context *ctx;
	struct gguf_context *gguf;
	const float *word;   /* [n_vocab, n_embd] */
	const float *type;   /* [n_types, n_embd] */
	int n_vocab, n_types;
};

static int tables_load(struct tables *tb, const char *path, int n_embd)
{
	struct gguf_init_params p = { .no_alloc = false, .ctx = &tb->ctx };
	struct ggml_tensor *w, *t;

	tb->gguf = gguf_init_from_file(path, p);
	if (!tb->gguf)
		return -1;
	w = ggml_get_tensor(tb->ctx, "token_embd.weight");
	t = ggml_get_tensor(tb->ctx, "token_types.weight");   /* none in ModernBERT */
	if (!w || w->type != GGML_TYPE_F32 || w->ne[0] != n_embd)
		return -1;
	if (t && (t->type != GGML_TYPE_F32 || t->ne[0] != n_embd))
		return -1;
	tb->word = w->data;
	tb->type = t ? t->data : NULL;
	tb->n_vocab = (int)w->ne[1];
	tb->n_types = t ? (int)t->ne[1] : 0;
	return 0;
}

static void tables_free(struct tables *tb)
{
	if (tb->gguf)
		gguf_free(tb->gguf);
	if (tb->ctx)
		ggml_free(tb->ctx);
}

/* Reads one "TYPE1_FROM ID..." line; 1 = got one, 0 = end, -1 = bad line. */
static int read_seq(FILE *f, struct seq *s)
{
	static char line[MAX_IDS * 12];
	char *p, *end;

	if (!fgets(line, sizeof line, f))
		return 0;
	s->type1_from = (int)strtol(line, &end, 10);
	if (end == line)
		return -1;
	s->n = 0;
	for (p = end;; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (s->n == MAX_IDS)
			return -1;
		s->ids[s->n++] = (llama_token)v;
	}
	return s->n > 0 ? 1 : -1;
}

static void print_vec(const float *v, int n)
{
	putchar('[');
	for (int i = 0; i < n; i++)
		printf(i ? ",%.9g" : "%.9g", v[i]);
	putchar(']');
}

/* Fills batch for s; pairs on a multi-type model go in as embeddings. */
static int fill_batch(struct llama_batch *b, const struct seq *s,
		      const struct tables *tb, int n_embd, int via_embd)
{
	b->n_tokens = s->n;
	for (int i = 0; i < s->n; i++) {
		b->pos[i] = i;
		b->n_seq_id[i] = 1;
		b->seq_id[i][0] = 0;
		b->logits[i] = 1;
		if (s->ids[i] < 0 || s->ids[i] >= tb->n_vocab)
			return -1;
		if (!via_embd) {
			b->token[i] = s->ids[i];
			continue;
		}
		int t = i >= s->type1_from ? 1 : 0;
		const float *w = tb->word + (size_t)s->ids[i] * n_embd;
		const float *ty = tb->type + (size_t)t * n_embd;
		for (int k = 0; k < n_embd; k++)
			b->embd[(size_t)i * n_embd + k] = w[k] + (ty[k] - tb->type[k]);
	}
	return 0;
}

static int n_cls_out(struct llama_context *ctx)
{
#ifdef EMBED_CLS_OUT
	return (int)llama_model_n_cls_out(llama_get_model(ctx));
#else
	(void)ctx;
	return 1;
#endif
}

static void clear_memory(struct llama_context *ctx)
{
#ifdef EMBED_MEMORY_API
	llama_memory_clear(llama_get_memory(ctx), true);
#else
	llama_kv_cache_clear(ctx);
#endif
}

static void print_result(struct llama_context *ctx, enum llama_pooling_type pool,
			 int n, int n_embd, int via_embd)
{
	printf("{");
	if (via_embd)
		printf("\"via_embd\": true, ");
	if (pool == LLAMA_POOLING_TYPE_NONE) {
		printf("\"tokens\": [");
		for (int i = 0; i < n; i++) {
			if (i)
				putchar(',');
			print_vec(llama_get_embeddings_ith(ctx, i), n_embd);
		}
		printf("]");
	} else if (pool == LLAMA_POOLING_TYPE_RANK) {
		printf("\"logits\": ");
		print_vec(llama_get_embeddings_seq(ctx, 0), n_cls_out(ctx));
	} else {
		printf("\"pooled\": ");
		print_vec(llama_get_embeddings_seq(ctx, 0), n_embd);
	}
	printf("}\n");
}

static int run(struct llama_context *ctx, FILE *in, const struct tables *tb, int n_embd)
{
	static struct seq s;
	enum llama_pooling_type pool = llama_pooling_type(ctx);
	struct llama_batch tok = llama_batch_init(MAX_IDS, 0, 1);
	struct llama_batch emb = llama_batch_init(MAX_IDS, n_embd, 1);
	int r, rc = -1, line = 0;

	while ((r = read_seq(in, &s)) != 0) {
		line++;
		int via_embd = s.type1_from >= 0 && s.type1_from < s.n && tb->n_types > 1;
		struct llama_batch *b = via_embd ? &emb : &tok;
		if (r < 0 || fill_batch(b, &s, tb, n_embd, via_embd) < 0) {
			fprintf(stderr, "embed_ids: bad input line %d\n", line);
			goto fail;
		}
		clear_memory(ctx);
		if (llama_decode(ctx, *b) != 0) {
			fprintf(stderr, "embed_ids: llama_decode failed on line %d\n", line);
			goto fail;
		}
		print_result(ctx, pool, s.n, n_embd, via_embd);
	}
	rc = 0;
fail:
	llama_batch_free(tok);
	llama_batch_free(emb);
	return rc;
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user)
{
	(void)user;
	if (level >= GGML_LOG_LEVEL_WARN)
		fputs(text, stderr);
}

struct opts {
	int tokens, threads, n_ctx, fa, noncausal, pool;
	const char *model, *ids;
};

/* Fills o from argv; 0 = ok, -1 = usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	int i = 1;

	*o = (struct opts){ .threads = 1, .pool = -1 };
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-t"))
			o->tokens = 1;
		else if (!strcmp(argv[i], "-f"))
			o->fa = 1;
		else if (!strcmp(argv[i], "-N"))
			o->noncausal = 1;
		else if (!strcmp(argv[i], "-P") && i + 1 < argc)
			o->pool = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-j") && i + 1 < argc)
			o->threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-c") && i + 1 < argc)
			o->n_ctx = atoi(argv[++i]);
		else
			return -1;
	}
	if (argc - i != 2)
		return -1;
	o->model = argv[i];
	o->ids = argv[i + 1];
	return 0;
}

/* An embeddings context for one sequence at a time; NULL on failure. */
static struct llama_context *new_context(struct llama_model *model, const struct opts *o)
{
	struct llama_context_params cp = llama_context_default_params();
	int n_train = llama_model_n_ctx_train(model);

	cp.embeddings = true;
	cp.n_ctx = o->n_ctx > 0 ? o->n_ctx : (n_train < 512 ? n_train : 512);
	cp.n_batch = cp.n_ubatch = cp.n_ctx;   /* non-causal: one ubatch per sequence */
	cp.n_seq_max = 1;
	cp.n_threads = cp.n_threads_batch = o->threads;
	cp.type_k = cp.type_v = GGML_TYPE_F32;   /* decoders: no fp16 K/V cache */
	if (o->tokens)
		cp.pooling_type = LLAMA_POOLING_TYPE_NONE;
	else if (o->pool >= 0)
		cp.pooling_type = (enum llama_pooling_type)o->pool;
#ifdef EMBED_FLASH_ATTN_TYPE
	cp.flash_attn_type = o->fa ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
#else
	cp.flash_attn = o->fa;
#endif
	return llama_init_from_model(model, cp);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct tables tb = { 0 };
	struct llama_model *model = NULL;
	struct llama_context *ctx = NULL;
	FILE *in = NULL;
	int rc = 1;

	if (parse_args(argc, argv, &o) < 0) {
		fprintf(stderr, "usage: embed_ids [-t] [-f] [-N] [-P POOLING] [-j THREADS] [-c CTX] MODEL.gguf IDS.txt\n");
		return 2;
	}
	llama_log_set(quiet_log, NULL);
	llama_backend_init();

	model = llama_model_load_from_file(o.model, llama_model_default_params());
	if (!model)
		goto fail;
	int n_embd = llama_model_n_embd(model);
	if (tables_load(&tb, o.model, n_embd) < 0) {
		fprintf(stderr, "embed_ids: no F32 token_embd in %s\n", o.model);
		goto fail;
	}
	ctx = new_context(model, &o);
	if (!ctx)
		goto fail;
	if (o.noncausal)
		llama_set_causal_attn(ctx, false);
	in = fopen(o.ids, "r");
	if (!in) {
		perror(o.ids);
		goto fail;
	}
	rc = run(ctx, in, &tb, n_embd) == 0 ? 0 : 1;
fail:
	if (in)
		fclose(in);
	if (ctx)
		llama_free(ctx);
	if (model)
		llama_model_free(model);
	tables_free(&tb);
	llama_backend_free();
	return rc;
}
