/* Checks shared by the tokenizer tests (test_tok.c, test_tok_scan.c). */
#ifndef CEMBED_TOK_TEST_H
#define CEMBED_TOK_TEST_H

#include "tok/tok.h"

typedef int (*tok_load_fn)(const char *json, size_t len, tokenizer **out);

/* Loads doc (which must load) with each of its allocations failing in
 * turn: every attempt either fails with no tokenizer or succeeds, and
 * nothing leaks (the sanitizer run checks that). */
void check_load_under_alloc_failures(tok_load_fn load_fn, const char *doc, size_t len);

#endif
