/* `cembed info`: the facts of a model directory as one JSON object. */
#include <string.h>

#include "chunk/chunk.h"
#include "cli.h"
#include "json/json.h"

int cmd_info(int argc, char **argv) {
    cli_common c;
    if (cli_common_init(&c)) return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_flag(&c, argc, argv, &i);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) {
            cli_error("unknown argument %s", argv[i]);
            return EXIT_USAGE;
        }
    }
    cembed_options o = cli_model_options(&c, c.batch_size ? c.batch_size : 1);
    cembed_model *m;
    const int rc = cli_open_model(&c, &o, &m);
    if (rc) return rc;
    cembed_model_info i;
    cembed_model_get_info(m, &i);
    buf b = {0};
    int ok = buf_append(&b, "{\"name\":", 8) == 0 && json_write_string(&b, i.name, strlen(i.name)) == 0 &&
             buf_append(&b, ",\"path\":", 8) == 0 && json_write_string(&b, i.path, strlen(i.path)) == 0 &&
             buf_printf(&b,
                        ",\"architecture\":\"%s\",\"family\":\"%s\",\"kind\":\"%s\",\"dimensions\":%d,"
                        "\"hidden_size\":%d,\"layers\":%d,\"heads\":%d,"
                        "\"intermediate_size\":%d,\"vocab_size\":%d,\"max_seq_len\":%d,\"pooling\":\"%s\","
                        "\"normalize\":%s,\"layer_norm_eps\":%g,\"weights_dtype\":\"%s\",\"weights_bytes\":%zu,"
                        "\"threads\":%d,\"precision\":\"%s\",",
                        i.architecture, i.family, i.kind, i.hidden, i.hidden_size, i.layers, i.heads, i.intermediate, i.vocab_size, i.max_seq_len,
                        i.pooling, i.normalize ? "true" : "false", (double)i.layer_norm_eps, i.weights_dtype,
                        i.weights_bytes, i.threads, i.precision) == 0 &&
             cembed_kernels_json(m, &b) == 0 &&
             buf_printf(&b, ",\"chunkers\":\"%s\",\"syntax_languages\":\"%s\"", *chunk_langs() ? "syntax lines" : "lines",
                        chunk_langs()) == 0 &&
             buf_append(&b, "}\n", 2) == 0;
    if (ok) fwrite(b.ptr, 1, b.len, stdout);
    buf_free(&b);
    cembed_model_free(m);
    return ok ? EXIT_OK : EXIT_FAIL;
}
