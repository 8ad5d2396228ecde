/* tok: tokenizers from tokenizer.json (or vocab.txt), id-for-id equal to
 * Hugging Face's tokenizers.
 *
 * Pipeline for one text (HF's order):
 *   1. UTF-8 decode; invalid bytes become U+FFFD.
 *   2. Split out the added tokens that are not normalized, leftmost-longest
 *      on the raw text, with their lstrip/rstrip/single_word flags.
 *   3. Per remaining section: the normalizer steps (BertNormalizer, NFC/NFD/
 *      NFKC/NFKD, Lowercase, Strip, StripAccents, Replace, Prepend,
 *      Precompiled), then the normalized added tokens.
 *   4. The pre-tokenizer steps (BertPreTokenizer, ByteLevel, Split with a
 *      regex or string and any behavior, Whitespace, WhitespaceSplit,
 *      Punctuation, Digits, Metaspace).
 *   5. The model on each piece: WordPiece, BPE (merges, byte fallback,
 *      unk) or Unigram (Viterbi).
 *   6. Truncation of the contents (right or left; pairs longest_first), then
 *      the post-processor's template ([CLS] A [SEP], <s> A </s>, ...).
 * The BERT normalizer and pre-tokenizer keep the JS oracle's character sets
 * (JS \s, final sigma) that tokenizer_oracle checks; everything else follows
 * the Rust library. A component type this file does not know is refused at
 * load with EMODEL naming it.
 */
#ifndef CEMBED_TOK_H
#define CEMBED_TOK_H

#include "base/base.h"

typedef struct tokenizer tokenizer;

#define TOK_MAX_FILE_BYTES (64u << 20)

/* A growable id vector reused across calls to avoid allocation. */
typedef struct tok_ids {
    int32_t *ids;
    size_t n, cap;
    size_t n_full;      /* ids before truncation (contents + the template's special tokens) */
    int truncated;
    size_t type1_from;  /* index of the first id of type id 1; n when none (single texts) */
} tok_ids;

/* Parses tokenizer.json text. tokenizer_config.json text may be NULL.
 * OUT: *out. Fails with EFORMAT (names the field), EMODEL (a normalizer,
 * pre-tokenizer or model type other than BERT WordPiece) or ENOMEM. */
int tok_load_json(const char *json, size_t len, tokenizer **out);
/* Builds a tokenizer from vocab.txt text (one token per line, id = line
 * number) with BERT defaults; lowercase as given. */
int tok_load_vocab(const char *text, size_t len, int lowercase, tokenizer **out);
/* Loads DIR/tokenizer.json, else DIR/vocab.txt (+ tokenizer_config.json). */
int tok_load_dir(const char *dir, tokenizer **out);
void tok_free(tokenizer *t);

/* Encodes text[0..len) into *out (grown as needed), [CLS] ... [SEP],
 * truncated to max_len ids (max_len >= 2). Fails only with ENOMEM.
 * Same as tok_encode_ex(t, text, len, max_len, 0, out). */
int tok_encode(const tokenizer *t, const char *text, size_t len, int max_len, tok_ids *out);
/* Encodes one text with the post-processor's single template (e.g.
 * [CLS] A [SEP], <s> A </s>, or A alone), truncating the contents as
 * Hugging Face does before post-processing: to max_len minus the template's
 * special tokens, keeping the first ids (left = 0) or the last (left = 1).
 * A max_len below the special-token count keeps the special tokens only.
 * OUT: out->ids/n, n_full (length before truncation), truncated, type1_from.
 * Fails only with ENOMEM. */
int tok_encode_ex(const tokenizer *t, const char *text, size_t len, int max_len, int left, tok_ids *out);
/* Encodes the pair (a, b) with the pair template (e.g. [CLS] A [SEP] B [SEP],
 * <s> A </s></s> B </s>), the contents truncated by HF's longest_first
 * strategy to max_len minus the template's special tokens (each keeps its
 * first ids). out->type1_from is where type id 1 starts (n if never, as
 * for RoBERTa). Fails only with ENOMEM. */
int tok_encode_pair(const tokenizer *t, const char *a, size_t alen, const char *b, size_t blen, int max_len,
                    tok_ids *out);
void tok_ids_free(tok_ids *v);
/* Frees this thread's scratch buffers now (they are also freed when the thread ends). */
void tok_thread_release(void);

size_t tok_vocab_size(const tokenizer *t);
/* The single template's first item when it is a special token ([CLS], <s>),
 * and its last item when it is one ([SEP], </s>); -1 when there is none. */
int32_t tok_cls_id(const tokenizer *t);
int32_t tok_sep_id(const tokenizer *t);
/* tokenizer.json's padding.pad_id, else [PAD] or <pad>; -1 if none. */
int32_t tok_pad_id(const tokenizer *t);
/* How many special tokens the single (pair = 0) or pair template adds. */
size_t tok_num_special(const tokenizer *t, int pair);
/* The token string of id, or an empty slice. */
str tok_id_to_token(const tokenizer *t, int32_t id);

/* ---- Unicode helpers (unicode.c), exposed for tests ---- */
int uni_is_js_space(uint32_t cp);
int uni_is_bert_punct(uint32_t cp);
int uni_is_cjk_bmp(uint32_t cp);

#endif
