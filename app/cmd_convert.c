/* `cembed convert --from tfjs SRC_DIR OUT_DIR`: import a TF.js graph model
 * (see src/model/tfjs.c) into a Hugging Face directory cembed loads. */
#include <string.h>

#include "cli.h"
#include "model/model.h"

int cmd_convert(int argc, char **argv) {
    const char *from = NULL, *src = NULL, *dst = NULL;
    long max_seq = 256;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
            from = argv[++i];
        } else if (strcmp(argv[i], "--max-seq-length") == 0) {
            if (i + 1 >= argc || cli_parse_int(argv[++i], 2, 1 << 20, &max_seq)) {
                cli_error("--max-seq-length needs an integer >= 2");
                return EXIT_USAGE;
            }
        } else if (argv[i][0] == '-') {
            cli_error("unknown flag %s", argv[i]);
            return EXIT_USAGE;
        } else if (!src) {
            src = argv[i];
        } else if (!dst) {
            dst = argv[i];
        } else {
            cli_error("unexpected argument %s", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!from || strcmp(from, "tfjs") != 0 || !src || !dst) {
        cli_error("usage: cembed convert --from tfjs SRC_DIR OUT_DIR [--max-seq-length N]");
        return EXIT_USAGE;
    }
    if (model_convert_tfjs(src, dst, (int)max_seq)) {
        cli_error("convert %s: %s", src, cembed_last_error());
        return EXIT_FAIL;
    }
    fprintf(stderr, "cembed: converted %s into %s\n", src, dst);
    return EXIT_OK;
}
