/* chunk/lang.h: what the syntax chunker knows of each language (private to
 * src/chunk). A language is its tree-sitter grammar plus a few node-type
 * lists: which nodes are definitions (and the kind each one reports), which
 * wrap a definition (a decorator, `export`, `template<>`), and which lines
 * belong to the next sibling (comments, attributes). Only languages whose
 * grammar the Makefile compiled in (CEMBED_TS_<NAME>) are listed. */
#ifndef CEMBED_CHUNK_LANG_H
#define CEMBED_CHUNK_LANG_H

#include "chunk/chunk.h"

typedef struct lang_def {
    const char *type;   /* a grammar's node type */
    const char *kind;   /* what a chunk of it is called: "function", "class" ... */
} lang_def;

struct chunk_lang {
    const char *name;
    const char *exts;              /* " .py .pyi ": each extension between spaces */
    const void *(*grammar)(void);  /* tree_sitter_NAME(): a const TSLanguage * */
    const lang_def *defs;          /* ends with {NULL, NULL} */
    const char *const *wrappers;   /* nodes whose last named child (or "definition") is the definition */
    const char *const *attached;   /* nodes that stay with the next sibling */
};

/* The definition kind of a node type, or NULL. */
const char *lang_def_kind(const chunk_lang *l, const char *type);
int lang_is_wrapper(const chunk_lang *l, const char *type);
int lang_is_attached(const chunk_lang *l, const char *type);

#endif
