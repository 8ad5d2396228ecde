/* Internals shared by the tokenizer's files: the vocabulary hash and the
 * normalizer's code-point buffers. */
#ifndef CEMBED_TOK_INTERNAL_H
#define CEMBED_TOK_INTERNAL_H

#include "tok.h"

/* ---- vocab.c: token string -> id, open addressing ---- */
typedef struct vocab {
    char *strings;         /* all token bytes, back to back */
    size_t strings_len, strings_cap;
    uint32_t *off, *len;   /* per id */
    size_t n_ids;
    int32_t *slots;        /* ids, -1 empty; size mask + 1 */
    size_t mask;
    size_t n_dups;         /* strings set under two ids since the table was built */
    int stale;             /* an id was set again after the build: rebuild */
} vocab;

int vocab_init(vocab *v, size_t n_ids);
/* Sets token s to id (id < n_ids given to vocab_init; later sets win). */
int vocab_set(vocab *v, str s, int32_t id);
/* Builds the hash once every id is set (again after later sets: cheap
 * unless an id was set twice). */
int vocab_build(vocab *v);
int32_t vocab_get(const vocab *v, const char *s, size_t n);   /* -1 if absent */
void vocab_free(vocab *v);
/* 1 when a and b give every id the same bytes (or leave it unset). */
int vocab_equal(const vocab *a, const vocab *b);

/* ---- normalize.c ---- */
typedef struct norm_opts {
    int clean_text, handle_chinese_chars, lowercase, strip_accents;
} norm_opts;

typedef struct u32vec {
    uint32_t *p;
    size_t n, cap;
} u32vec;
int u32_reserve(u32vec *v, size_t n);
int u32_push(u32vec *v, uint32_t c);

/* Normalizes in[0..n) into *out (replacing its contents); tmp is scratch. */
int norm_apply(const norm_opts *o, const uint32_t *in, size_t n, u32vec *out, u32vec *tmp);

/* ---- normalizer steps (normalize.c, precompiled.c) ---- */
enum {
    NS_BERT, NS_NFC, NS_NFD, NS_NFKC, NS_NFKD, NS_LOWER, NS_STRIP, NS_STRIP_ACCENTS, NS_REPLACE, NS_PREPEND,
    NS_PRECOMPILED
};
typedef struct precompiled precompiled;
typedef struct norm_step {
    int kind;
    norm_opts bert;            /* NS_BERT */
    int left, right;           /* NS_STRIP */
    struct tok_re *re;         /* NS_REPLACE with a Regex */
    uint32_t *pat, *content;   /* NS_REPLACE String pattern; NS_REPLACE/NS_PREPEND content */
    size_t pat_n, content_n;
    precompiled *pc;           /* NS_PRECOMPILED */
} norm_step;
/* Runs steps[0..n) over in[0..len) into *out; a, b are scratch. */
int precompiled_apply(const precompiled *pc, const uint32_t *s, size_t n, u32vec *out);
void precompiled_free(precompiled *pc);
int precompiled_load(const char *b64, size_t len, precompiled **out);
int norm_run(const norm_step *steps, size_t n, const uint32_t *in, size_t len, u32vec *out, u32vec *a, u32vec *b,
             int *lead_cut);
void norm_step_free(norm_step *s);

/* ---- pre-tokenizer steps (pretok.c) ---- */
enum { PS_BERT, PS_BYTELEVEL, PS_SPLIT, PS_WHITESPACE, PS_WSPLIT, PS_PUNCT, PS_DIGITS, PS_METASPACE };
enum { SB_REMOVED, SB_ISOLATED, SB_PREV, SB_NEXT, SB_CONTIGUOUS };
typedef struct pretok_step {
    int kind;
    int add_prefix_space, use_regex;   /* PS_BYTELEVEL */
    struct tok_re *re;                  /* PS_SPLIT Regex, PS_WHITESPACE, PS_BYTELEVEL */
    uint32_t *pat;                      /* PS_SPLIT String */
    size_t pat_n;
    int behavior, invert;               /* PS_SPLIT, PS_PUNCT */
    int individual_digits;              /* PS_DIGITS */
    uint32_t replacement;               /* PS_METASPACE */
    int prepend_scheme, split;          /* 0 always, 1 first, 2 never */
} pretok_step;

/* A piece of a code-point buffer; first: it starts at offset 0 of the
 * original text (Metaspace's "first" scheme). */
typedef struct span {
    uint32_t off, len;
    uint32_t first;
} span;
typedef struct spanvec {
    span *p;
    size_t n, cap;
} spanvec;
int span_push(spanvec *v, uint32_t off, uint32_t len, uint32_t first);

/* Runs steps over buf's spans *sp (in place: buf and sp are replaced by the
 * result; tb, ts are scratch). */
int pretok_run(const pretok_step *steps, size_t n, u32vec *buf, spanvec *sp, u32vec *tb, spanvec *ts);
void pretok_step_free(pretok_step *s);
void pretok_thread_release(void);
/* GPT-2's byte -> code point map of ByteLevel. */
uint32_t tok_byte_char(uint8_t b);
int tok_char_byte(uint32_t c);   /* inverse, -1 if not a byte char */
extern const char tok_gpt2_pattern[];

/* ---- bpe.c ---- */
typedef struct bpe bpe;
int bpe_new(bpe **out);
void bpe_free(bpe *b);
/* Loads model options and merges (the vocab is already in v). */
struct json_t;
struct tok_scan_list;
/* merges: the pairs as tok_scan_json read them, or NULL to read
 * model.merges from the tree. */
int bpe_load(bpe *b, const vocab *v, struct json_t *model, const struct tok_scan_list *merges);
/* Appends the ids of word w[0..n) to *o. */
int bpe_word(const bpe *b, const vocab *v, const uint32_t *w, size_t n, tok_ids *o);
int tok_push_id(tok_ids *o, int32_t id);
void bpe_thread_release(void);

/* ---- unigram.c ---- */
typedef struct unigram unigram;
void unigram_free(unigram *u);
int unigram_load(struct json_t *model, vocab *v, unigram **out);
int unigram_word(const unigram *u, const vocab *v, const uint32_t *w, size_t n, tok_ids *o);
void unigram_finish(unigram *u, const vocab *v);
void unigram_thread_release(void);

/* ---- added.c: added tokens, matched leftmost-longest with a trie ---- */
typedef struct added_tok {
    uint32_t *cps;
    size_t n;
    int32_t id;
    uint8_t normalized, lstrip, rstrip, single_word, special;
} added_tok;
typedef struct added_set added_set;
/* Builds the matcher over toks[k] with toks[k].normalized == normalized. */
int added_build(const added_tok *toks, size_t n, int normalized, added_set **out);
void added_free(added_set *a);
/* Splits s[0..n) as HF's AddedVocabulary::find_matches: fills *sp with
 * pieces; first = token index + 1 for a token, 0 for text. */
int added_split(const added_set *a, const added_tok *toks, const uint32_t *s, size_t n, spanvec *sp);

/* ---- the post-processor as a template (load.c) ---- */
#define TPL_MAX_ITEMS 16
#define TPL_MAX_IDS 64
typedef struct tpl_item {
    int seq;          /* -1 special tokens, 0 A, 1 B */
    uint32_t type;    /* type id */
    uint32_t off, n;  /* special ids: t->tpl_ids[off..off+n) */
} tpl_item;
typedef struct tpl {
    tpl_item items[TPL_MAX_ITEMS];
    size_t n, n_special;   /* n_special: ids the template adds */
} tpl;

enum { M_WORDPIECE, M_BPE, M_UNIGRAM };

struct tokenizer {
    vocab v;
    int model;
    norm_step *norms;
    size_t n_norms;
    pretok_step *pretoks;
    size_t n_pretoks;
    bpe *bpe;
    unigram *uni;
    int32_t unk_id, cls_id, sep_id, pad_id;
    int max_word_chars;       /* WordPiece */
    char prefix[16];          /* WordPiece continuing-subword prefix, "##" */
    size_t prefix_len;
    added_tok *added;
    size_t n_added;
    added_set *raw_set, *norm_set;
    tpl single, pair;
    int32_t tpl_ids[TPL_MAX_IDS];
    size_t n_tpl_ids;
};

/* ---- scan.c: model.vocab and model.merges read without a JSON tree ----
 * Each function refuses (EFORMAT, message not meant for anyone) whatever
 * it does not read exactly as jansson would; the caller then loads the
 * document the slow way. */
typedef struct tok_scan_list {     /* entries: byte strings (bytes + off, len) and a value */
    char *bytes;
    size_t n_bytes, bytes_cap;
    uint32_t *off, *len;
    int32_t *val;
    size_t n, cap;
} tok_scan_list;
typedef struct tok_scan {
    tok_scan_list vocab;            /* model.vocab: token, val = id, in order */
    tok_scan_list merges;           /* model.merges: two entries (a, b) per merge, in rank order */
    size_t vocab_at, vocab_len;     /* where they were in the text (merges_len 0: none read) */
    size_t merges_at, merges_len;
    char *skeleton;                 /* the text with those values as {} and [] */
    size_t skeleton_len;
    int seen_model;
} tok_scan;
/* Reads tokenizer.json s[0..n): OUT *sc (free it with tok_scan_free, also
 * after a failure). Refuses a document without an object model.vocab. */
int tok_scan_json(const char *s, size_t n, tok_scan *sc);
void tok_scan_free(tok_scan *sc);
/* tok_load_json without scan.c: the whole document as a jansson tree (the
 * reference the fast path is tested against). */
int tok_load_json_tree(const char *text, size_t len, tokenizer **out);
/* The fast path alone: the vocab and merges read by scan.c, the rest (a
 * few kilobytes) by jansson. Fails on any refusal (then the slow path
 * decides) or error; tok_load_json tries it first. */
int tok_load_json_scanned(const char *text, size_t len, tokenizer **out);

/* load.c: the tokenizer.json components. Each fails with EFORMAT (a bad
 * field, named) or EMODEL (a component type this tokenizer lacks, named). */
struct json_t;
int load_normalizer(tokenizer *t, struct json_t *j);
int load_pre_tokenizer(tokenizer *t, struct json_t *j);
int load_post_processor(tokenizer *t, struct json_t *j);
/* The BERT template [CLS] A [SEP] / [CLS] A [SEP] B [SEP] (types 0, 1). */
int tpl_set_bert(tokenizer *t, int32_t cls, int32_t sep, int roberta);

#endif
