/* chunk/lang.h: what the syntax chunker knows of each language (private to
 * src/chunk). A language is its tree-sitter grammar plus a few node-type
 * lists: which nodes are definitions (and the kind each one reports), which
 * wrap a definition (a decorator, `export`, `template<>`), and which lines
 * belong to the next sibling (comments, attributes). Only languages whose
 * grammar the Makefile compiled in (CEMBED_TS_<NAME>) are listed. */
#ifndef CEMBED_CHUNK_LANG_H
#define CEMBED_CHUNK_LANG_H

#include "chunk/chunk.h"

/* How a language's symbols are qualified by the file's module (README,
 * "Syntax chunks"): a top-level declaration names the module (a Go package
 * clause, a Java package, a C# or PHP `namespace X;`; a namespace with a body
 * qualifies its definitions as any definition does, and the file then has no
 * other module), else the file's path under the walk root does. */
typedef struct lang_module {
    const char *const *decls;  /* top-level node types that name the module */
    const char *dir_sep;       /* the path's '/' becomes this, the extension dropped; NULL: the path as it is */
    const char *drop;          /* a last component that stands for its folder ("__init__", "mod"), or NULL */
    int dirs_only;             /* the path's folders only (Java: a file is named after its class) */
    const char *mod_sep;       /* between the module and the outermost name */
    const char *sep;           /* between nested names */
} lang_module;

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
    lang_module mod;
};

/* The definition kind of a node type, or NULL. */
const char *lang_def_kind(const chunk_lang *l, const char *type);
int lang_is_wrapper(const chunk_lang *l, const char *type);
int lang_is_attached(const chunk_lang *l, const char *type);
int lang_is_module_decl(const chunk_lang *l, const char *type);

#endif
