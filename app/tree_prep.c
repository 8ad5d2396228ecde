/* Files cut and tokenized ahead of the writer of `cembed embed DIR`, on
 * helper threads. Reading a file, tokenizing its lines, parsing and cutting
 * it, then tokenizing each chunk's text is independent work per file; done
 * inline it left the compute threads idle between windows and made a rerun
 * over a cached tree one thread's work (numpy + the standard library: 5.5 s
 * of CPU on one core, mostly tree-sitter and the tokenizer). Here up to
 * TREE_PREP_MAX threads take files in walk order and put each result in a
 * ring of 4 slots per thread; the writer takes them back in walk order, so
 * the output, the cache and the counts are those of the serial loop, and
 * memory is bounded by the ring (each slot one file of at most
 * --max-file-bytes, with its chunks' texts and ids). With no thread the
 * writer cuts each file itself. */
#include <pthread.h>
#include <string.h>

#include "embed_tree.h"

#define TREE_PREP_MAX 4

struct tree_prep {
    tree_prep_opts o;
    pthread_mutex_t mu;
    pthread_cond_t ready, space;
    size_t next;        /* the next file a thread takes */
    size_t taken;       /* files handed to the writer */
    int stop;
    int n_threads;
    pthread_t th[TREE_PREP_MAX];
    size_t cap;         /* file i is in ring[i % cap] while full[i % cap] */
    tree_file *ring;
    unsigned char *full;
};

void tree_chunk_free(tree_chunk *c) {
    base_free(c->text);
    cembed_free(c->ids);
    base_free(c->symbol);
    c->text = c->symbol = NULL;
    c->ids = NULL;
}

void tree_file_free(tree_file *f) {
    for (size_t k = 0; k < f->n; k++) tree_chunk_free(&f->v[k]);
    base_free(f->v);
    base_free(f->msg);
    f->v = NULL;
    f->msg = NULL;
    f->n = 0;
}

/* The text of a chunk: the prompt, its context lines, then its own lines.
 * OUT: *out, *len (base_malloc'd, NUL-terminated). ENOMEM only. */
static int chunk_text(const char *prompt, const char *text, const size_t (*lines)[2], const chunk_piece *c, char **out,
                      size_t *len) {
    buf b = {0};
    int rc = buf_append(&b, prompt, strlen(prompt));
    for (int k = 0; k < c->n_ctx && !rc; k++)
        for (int i = c->ctx[k].first; i <= c->ctx[k].last && !rc; i++)
            rc = buf_append(&b, text + lines[i][0], lines[i][1] - lines[i][0]) || buf_append(&b, "\n", 1);
    const size_t a = lines[c->first][0], e = lines[c->last][1];
    rc = rc || buf_append(&b, text + a, e - a) || buf_append(&b, "", 1);
    if (rc) {
        buf_free(&b);
        return base_err(CEMBED_ENOMEM, "out of memory");
    }
    *out = b.ptr;
    *len = b.len - 1;
    return 0;
}

/* Chunk c of the file as the writer takes it: lines, metadata, its text
 * and the text's ids. */
static int make_chunk(const tree_prep_opts *o, size_t fi, const char *text, const size_t (*lines)[2],
                      const chunk_list *cl, const chunk_piece *c, tree_chunk *t) {
    *t = (tree_chunk){.file = fi, .first = c->first + 1, .last = c->last + 1, .n_ctx = c->n_ctx, .lang = cl->lang,
                      .kind = c->kind};
    memcpy(t->ctx, c->ctx, sizeof t->ctx);
    int rc = chunk_text(o->prompt, text, lines, c, &t->text, &t->len);
    if (!rc && c->sym_len && !(t->symbol = base_strndup(cl->names.ptr ? cl->names.ptr + c->sym : "", c->sym_len)))
        rc = base_err(CEMBED_ENOMEM, "out of memory");
    size_t full;
    if (!rc) rc = cembed_tokenize(o->m, t->text, t->len, &t->ids, &t->n_ids, &t->truncated, &full);
    if (rc) tree_chunk_free(t);
    return rc;
}

/* Each line's token count, as the chunker weighs lines. OUT: *tokens. */
static int line_tokens(const cembed_model *m, const char *text, const size_t (*lines)[2], size_t n, int **tokens) {
    if (!(*tokens = base_malloc(n * sizeof **tokens))) return base_err(CEMBED_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int32_t *ids;
        size_t k, full;
        int rc = cembed_tokenize(m, text + lines[i][0], lines[i][1] - lines[i][0], &ids, &k, NULL, &full);
        if (rc) return rc;
        cembed_free(ids);
        (*tokens)[i] = (int)CE_MIN(full - 2, (size_t)1 << 30);
    }
    return 0;
}

/* Reads, cuts and tokenizes file fi into f. An unreadable, binary or empty
 * file is a kind, not an error; an error is f->rc with its message (the
 * last error is per thread). */
static void cut_file(const tree_prep_opts *o, size_t fi, tree_file *f) {
    const char *path = o->files->paths[fi];
    char *text = NULL;
    size_t len = 0, (*lines)[2] = NULL, n_lines = 0;
    int *tokens = NULL, rc = 0;
    chunk_list cl = {0};
    *f = (tree_file){.index = fi};
    if (file_read_all(path, o->max_file_bytes, &text, &len)) {
        f->kind = TREE_UNREADABLE;
        f->msg = base_strndup(cembed_last_error(), strlen(cembed_last_error()));
        return;
    }
    if (chunk_is_binary(text, len)) f->kind = TREE_BINARY;
    else if (!(rc = chunk_split_lines(text, len, &lines, &n_lines)) && n_lines == 0) f->kind = TREE_EMPTY;
    if (rc || f->kind != TREE_CUT) goto done;
    if ((rc = line_tokens(o->m, text, (const size_t(*)[2])lines, n_lines, &tokens))) goto done;
    chunk_opts co = o->co;
    co.path = path + o->files->rel[fi];   /* its module qualifies the symbols */
    const chunk_lang *lang = chunk_lang_for_path(path);
    if ((rc = chunk_file(o->lines_only ? NULL : lang, text, len, (const size_t(*)[2])lines, tokens, n_lines, &co, &cl)))
        goto done;
    if (!cl.lang && lang) cl.lang = chunk_lang_name(lang);   /* --chunker lines still says the language */
    f->by_syntax = cl.syntax;
    f->past_errors = cl.syntax && cl.n_errors > 0;
    f->fell_back = !cl.syntax && lang && !o->lines_only;
    if (cl.n && !(f->v = base_calloc(cl.n, sizeof *f->v))) rc = base_err(CEMBED_ENOMEM, "out of memory");
    for (size_t s = 0; s < cl.n && !rc; s++)
        if (!(rc = make_chunk(o, fi, text, (const size_t(*)[2])lines, &cl, &cl.v[s], &f->v[s]))) f->n++;
done:
    if (rc) {
        tree_file_free(f);
        f->rc = rc;
        f->msg = base_strndup(cembed_last_error(), strlen(cembed_last_error()));
    }
    base_free(text);
    base_free(lines);
    base_free(tokens);
    chunk_list_free(&cl);
}

static void *prep_thread(void *arg) {
    tree_prep *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->next < p->o.files->n && p->next >= p->taken + p->cap) pthread_cond_wait(&p->space, &p->mu);
        if (p->stop || p->next >= p->o.files->n) break;
        const size_t i = p->next++;
        pthread_mutex_unlock(&p->mu);
        tree_file f;
        cut_file(&p->o, i, &f);
        pthread_mutex_lock(&p->mu);
        p->ring[i % p->cap] = f;
        p->full[i % p->cap] = 1;
        pthread_cond_broadcast(&p->ready);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int tree_prep_start(const tree_prep_opts *o, tree_prep **out) {
    tree_prep *p = base_calloc(1, sizeof *p);
    if (!p) return base_err(CEMBED_ENOMEM, "out of memory");
    p->o = *o;
    const int want = CE_MAX(1, CE_MIN(o->threads, TREE_PREP_MAX));
    p->cap = 4 * (size_t)want;
    p->ring = base_calloc(p->cap, sizeof *p->ring);
    p->full = base_calloc(p->cap, 1);
    if (!p->ring || !p->full) {
        base_free(p->ring);
        base_free(p->full);
        base_free(p);
        return base_err(CEMBED_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->ready, NULL);
    pthread_cond_init(&p->space, NULL);
    /* fewer threads than asked (or none: the writer cuts) when they cannot start */
    while (p->n_threads < want && !pthread_create(&p->th[p->n_threads], NULL, prep_thread, p)) p->n_threads++;
    *out = p;
    return 0;
}

int tree_prep_next(tree_prep *p, tree_file *f) {
    if (p->taken >= p->o.files->n) return 0;
    if (!p->n_threads) {
        cut_file(&p->o, p->taken++, f);
        return 1;
    }
    pthread_mutex_lock(&p->mu);
    const size_t slot = p->taken % p->cap;
    while (!p->full[slot]) pthread_cond_wait(&p->ready, &p->mu);
    *f = p->ring[slot];
    p->full[slot] = 0;
    p->taken++;
    pthread_cond_broadcast(&p->space);
    pthread_mutex_unlock(&p->mu);
    return 1;
}

void tree_prep_free(tree_prep *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->space);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->n_threads; t++) pthread_join(p->th[t], NULL);
    for (size_t k = 0; k < p->cap; k++)
        if (p->full[k]) tree_file_free(&p->ring[k]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->space);
    base_free(p->ring);
    base_free(p->full);
    base_free(p);
}
