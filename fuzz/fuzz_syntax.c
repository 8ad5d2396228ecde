/* libFuzzer target: the syntax chunker on arbitrary bytes and cut-off
 * sources. Input: byte 0 picks the grammar (python, c, cpp, javascript,
 * typescript, tsx, go, rust, java, c_sharp, ruby, php, bash; one not built in means the line
 * chunker), byte 1 the token limit (1..256), the rest is the file. Whatever
 * it is, the chunks keep the invariants (chunk_list_check: in order,
 * disjoint, every line that is not blank in one chunk, context before the
 * chunk). The corpus is the unit-test fixtures, whole and cut. */
#include <string.h>

#include "chunk/chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"python", "c",    "cpp",     "javascript", "typescript", "tsx", "go",
                                        "rust",   "java", "c_sharp", "ruby",       "php",        "bash"};
    if (size < 2) return 0;
    const chunk_lang *l = chunk_lang_by_name(names[data[0] % (sizeof names / sizeof *names)]);
    const chunk_opts o = {.max_tokens = 1 + data[1], .max_lines = 1 + data[1] % 80, .overlap = 0,
                          .path = data[1] & 1 ? "./pkg/sub/__init__.x" : "../src/mod.x"};
    const char *text = (const char *)data + 2;
    const size_t len = size - 2;
    size_t (*lines)[2], n_lines;
    if (chunk_split_lines(text, len, &lines, &n_lines)) return 0;
    int *tokens = base_malloc((n_lines + 1) * sizeof *tokens);
    for (size_t i = 0; tokens && i < n_lines; i++) tokens[i] = (int)((lines[i][1] - lines[i][0] + 3) / 4);
    chunk_list cl;
    if (tokens && chunk_file(l, text, len, (const size_t(*)[2])lines, tokens, n_lines, &o, &cl) == 0) {
        if (chunk_list_check(text, (const size_t(*)[2])lines, n_lines, &cl)) {
            fprintf(stderr, "%s\n", cembed_last_error());
            CE_ASSERT(!"chunk invariants");
        }
        for (size_t i = 0; i < cl.n; i++) CE_ASSERT(!cl.syntax || cl.v[i].kind != NULL);
    }
    chunk_list_free(&cl);
    base_free(tokens);
    base_free(lines);
    return 0;
}
