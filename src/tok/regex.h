/* tok_re: the small backtracking regex engine the pre-tokenizers use, with
 * Oniguruma's (Ruby syntax) semantics for the subset that tokenizer.json
 * patterns use: leftmost-first alternation, greedy and lazy quantifiers
 * (? * + {n} {n,} {n,m}), groups (...) (?:...) (?i:...), lookahead (?=...)
 * (?!...), anchors ^ $ \A \z, ".", escapes \s \S \d \D \w \W \n \r \t \f \v
 * \xHH \x{H..} \uHHHH, \p{..}/\P{..} general categories (L Lu Ll Lt Lm Lo M Mn
 * Mc Me N Nd Nl No P Pc Pd Ps Pe Pi Pf Po S Sm Sc Sk So Z Zs Zl Zp C Cc Cf Co
 * Cs Cn, long names Letter ...), and bracket classes with ranges, negation
 * and those escapes. It runs on code points.
 *
 * Compiled form: the pattern's tree is emitted as a program of CHAR, CLASS,
 * ANY, SPLIT (try x, then y), JMP, LOOK and MATCH instructions; counted
 * repeats are unrolled. Matching runs the program with an explicit
 * backtracking stack, as Oniguruma does, so the first alternative that
 * matches wins (not the longest). */
#ifndef CEMBED_TOK_REGEX_H
#define CEMBED_TOK_REGEX_H

#include "base/base.h"

typedef struct tok_re tok_re;

/* Compiles pat[0..len) (UTF-8). OUT: *out, freed with tok_re_free. Fails
 * with EMODEL (syntax this engine lacks, message names the offset),
 * ELIMIT (over 64k instructions) or ENOMEM. */
int tok_re_compile(const char *pat, size_t len, tok_re **out);
void tok_re_free(tok_re *re);

/* Finds the leftmost match in s[from..n) (matching may look at all of s for
 * anchors and lookahead). Returns 1 with [*ms, *me) set, 0 if none, or
 * CEMBED_ENOMEM. Thread-safe: the backtracking stack is per thread. */
int tok_re_find(const tok_re *re, const uint32_t *s, size_t n, size_t from, size_t *ms, size_t *me);

/* Frees this thread's backtracking stack. */
void tok_re_thread_release(void);

/* Unicode properties shared with the pre-tokenizers. */
int tok_uni_space(uint32_t c);   /* White_Space */
int tok_uni_word(uint32_t c);    /* \w: letters, marks, Nd, Nl, Pc, ZWJ/ZWNJ */
uint32_t tok_uni_fold(uint32_t c);   /* simple case folding (one code point) */

#endif
