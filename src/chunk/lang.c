/* The languages of the syntax chunker: a file's extension picks one, and
 * each names the node types that are definitions in its grammar and how its
 * symbols are qualified by the file's module (the last column: the rule of
 * the README's table, in one place). The table
 * lists only the grammars the Makefile compiled in (CEMBED_TS_<NAME>, from
 * scripts/fetch-grammars.sh); without tree-sitter it is empty and every file
 * goes to the line chunker. */
#include <string.h>

#include "chunk/lang.h"

#define DEFS(...) ((const lang_def[]){__VA_ARGS__, {NULL, NULL}})
#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define GRAMMAR(n)                                                                                                   \
    const void *tree_sitter_##n(void);                                                                               \
    static const void *grammar_##n(void) { return tree_sitter_##n(); }

/* what C and C++ share, and JavaScript and TypeScript */
#define C_DEFS                                                                                                       \
    {"function_definition", "function"}, {"struct_specifier", "struct"}, {"union_specifier", "union"},               \
        {"enum_specifier", "enum"}, {"type_definition", "typedef"}
#define JS_DEFS                                                                                                      \
    {"function_declaration", "function"}, {"generator_function_declaration", "function"},                            \
        {"class_declaration", "class"}, {"method_definition", "method"}, {"class", "class"}
#define COMMENTS "comment", "line_comment", "block_comment"
#ifdef CEMBED_TS
static const char *const none[] = {NULL};
#endif
/* modules: the file's path as it is, `src/vec.c::vec_push` (C, C++, JavaScript, Ruby, shell) */
#define MOD_FILE(sep) {none, NULL, NULL, 0, "::", sep}

#ifdef CEMBED_TS_PYTHON
GRAMMAR(python)
#endif
#ifdef CEMBED_TS_C
GRAMMAR(c)
#endif
#ifdef CEMBED_TS_CPP
GRAMMAR(cpp)
#endif
#ifdef CEMBED_TS_JAVASCRIPT
GRAMMAR(javascript)
#endif
#ifdef CEMBED_TS_TYPESCRIPT
GRAMMAR(typescript)
#endif
#ifdef CEMBED_TS_TSX
GRAMMAR(tsx)
#endif
#ifdef CEMBED_TS_GO
GRAMMAR(go)
#endif
#ifdef CEMBED_TS_RUST
GRAMMAR(rust)
#endif
#ifdef CEMBED_TS_JAVA
GRAMMAR(java)
#endif
#ifdef CEMBED_TS_C_SHARP
GRAMMAR(c_sharp)
#endif
#ifdef CEMBED_TS_RUBY
GRAMMAR(ruby)
#endif
#ifdef CEMBED_TS_PHP
GRAMMAR(php)
#endif
#ifdef CEMBED_TS_BASH
GRAMMAR(bash)
#endif

static const chunk_lang langs[] = {
#ifdef CEMBED_TS_PYTHON
    {"python", " .py .pyi .pyw ", grammar_python, DEFS({"function_definition", "function"}, {"class_definition", "class"}),
     LIST("decorated_definition"), LIST("comment"), {none, ".", "__init__", 0, ".", "."}},
#endif
#ifdef CEMBED_TS_C
    {"c", " .c .h ", grammar_c, DEFS(C_DEFS), none, LIST(COMMENTS), MOD_FILE("::")},
#endif
#ifdef CEMBED_TS_CPP
    {"cpp", " .cc .cpp .cxx .c++ .hh .hpp .hxx .h++ .ipp ", grammar_cpp,
     DEFS(C_DEFS, {"class_specifier", "class"}, {"namespace_definition", "namespace"}),
     LIST("template_declaration"), LIST(COMMENTS), MOD_FILE("::")},
#endif
#ifdef CEMBED_TS_JAVASCRIPT
    {"javascript", " .js .mjs .cjs .jsx ", grammar_javascript, DEFS(JS_DEFS), LIST("export_statement"), LIST(COMMENTS),
     MOD_FILE(".")},
#endif
#ifdef CEMBED_TS_TYPESCRIPT
    {"typescript", " .ts .mts .cts ", grammar_typescript,
     DEFS(JS_DEFS, {"abstract_class_declaration", "class"}, {"interface_declaration", "interface"},
          {"type_alias_declaration", "type"}, {"enum_declaration", "enum"}, {"internal_module", "namespace"},
          {"function_signature", "function"}, {"abstract_method_signature", "method"}),
     LIST("export_statement"), LIST(COMMENTS, "decorator"), MOD_FILE(".")},
#endif
#ifdef CEMBED_TS_TSX
    {"tsx", " .tsx ", grammar_tsx,
     DEFS(JS_DEFS, {"abstract_class_declaration", "class"}, {"interface_declaration", "interface"},
          {"type_alias_declaration", "type"}, {"enum_declaration", "enum"}, {"internal_module", "namespace"}),
     LIST("export_statement"), LIST(COMMENTS, "decorator"), MOD_FILE(".")},
#endif
#ifdef CEMBED_TS_GO
    {"go", " .go ", grammar_go,
     DEFS({"function_declaration", "function"}, {"method_declaration", "method"}, {"type_declaration", "type"}),
     none, LIST(COMMENTS), {LIST("package_clause"), "/", NULL, 1, ".", "."}},
#endif
#ifdef CEMBED_TS_RUST
    {"rust", " .rs ", grammar_rust,
     DEFS({"function_item", "function"}, {"struct_item", "struct"}, {"enum_item", "enum"}, {"union_item", "union"},
          {"impl_item", "impl"}, {"trait_item", "trait"}, {"mod_item", "module"}, {"macro_definition", "macro"},
          {"function_signature_item", "function"}),
     none, LIST(COMMENTS, "attribute_item", "inner_attribute_item"), {none, "::", "mod", 0, "::", "::"}},
#endif
#ifdef CEMBED_TS_JAVA
    {"java", " .java ", grammar_java,
     DEFS({"class_declaration", "class"}, {"interface_declaration", "interface"}, {"enum_declaration", "enum"},
          {"record_declaration", "record"}, {"annotation_type_declaration", "interface"},
          {"method_declaration", "method"}, {"constructor_declaration", "constructor"}),
     none, LIST(COMMENTS), {LIST("package_declaration"), ".", NULL, 1, ".", "."}},
#endif
#ifdef CEMBED_TS_C_SHARP
    {"c_sharp", " .cs ", grammar_c_sharp,
     DEFS({"class_declaration", "class"}, {"struct_declaration", "struct"}, {"interface_declaration", "interface"},
          {"enum_declaration", "enum"}, {"record_declaration", "record"}, {"method_declaration", "method"},
          {"constructor_declaration", "constructor"}, {"namespace_declaration", "namespace"},
          {"local_function_statement", "function"}),
     none, LIST(COMMENTS), {LIST("file_scoped_namespace_declaration", "namespace_declaration"), ".", NULL, 0, ".", "."}},
#endif
#ifdef CEMBED_TS_RUBY
    {"ruby", " .rb .rake .gemspec ", grammar_ruby,
     DEFS({"method", "function"}, {"singleton_method", "function"}, {"class", "class"}, {"singleton_class", "class"},
          {"module", "module"}),
     none, LIST(COMMENTS), MOD_FILE(".")},
#endif
#ifdef CEMBED_TS_PHP
    {"php", " .php .phtml ", grammar_php,
     DEFS({"function_definition", "function"}, {"class_declaration", "class"}, {"interface_declaration", "interface"},
          {"trait_declaration", "trait"}, {"enum_declaration", "enum"}, {"method_declaration", "method"},
          {"namespace_definition", "namespace"}),
     none, LIST(COMMENTS), {LIST("namespace_definition"), "\\", NULL, 0, "\\", "::"}},
#endif
#ifdef CEMBED_TS_BASH
    {"bash", " .sh .bash ", grammar_bash, DEFS({"function_definition", "function"}), none, LIST(COMMENTS), MOD_FILE(".")},
#endif
    {NULL, NULL, NULL, NULL, NULL, NULL, {NULL, NULL, NULL, 0, NULL, NULL}},
};

static int in_list(const char *const *l, const char *s) {
    for (; *l; l++)
        if (strcmp(*l, s) == 0) return 1;
    return 0;
}

const char *lang_def_kind(const chunk_lang *l, const char *type) {
    for (const lang_def *d = l->defs; d->type; d++)
        if (strcmp(d->type, type) == 0) return d->kind;
    return NULL;
}
int lang_is_wrapper(const chunk_lang *l, const char *type) { return in_list(l->wrappers, type); }
int lang_is_attached(const chunk_lang *l, const char *type) { return in_list(l->attached, type); }
int lang_is_module_decl(const chunk_lang *l, const char *type) { return in_list(l->mod.decls, type); }

const chunk_lang *chunk_lang_for_path(const char *path) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash) || dot[1] == 0 || strlen(dot) > 8) return NULL;
    char key[12];
    snprintf(key, sizeof key, " %s ", dot);
    for (const chunk_lang *l = langs; l->name; l++)
        if (strstr(l->exts, key)) return l;
    return NULL;
}

const chunk_lang *chunk_lang_by_name(const char *name) {
    for (const chunk_lang *l = langs; l->name; l++)
        if (strcmp(l->name, name) == 0) return l;
    return NULL;
}

const char *chunk_lang_name(const chunk_lang *l) { return l->name; }

const char *chunk_langs(void) {
    static char names[256];
    if (!names[0] && langs[0].name) {
        for (const chunk_lang *l = langs; l->name; l++) {
            if (l != langs) strncat(names, " ", sizeof names - strlen(names) - 1);
            strncat(names, l->name, sizeof names - strlen(names) - 1);
        }
    }
    return names;
}
