/* `cembed pull ORG/NAME[@REVISION]`: downloads a model from the Hugging
 * Face Hub into the Hub cache (src/hub), checks that it opens, and prints
 * its snapshot folder. A model already there is not downloaded again. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hub/hub.h"

int cmd_pull(int argc, char **argv) {
    const char *spec = NULL;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' || spec) {
            cli_error("usage: cembed pull ORG/NAME[@REVISION]");
            return EXIT_USAGE;
        }
        spec = argv[i];
    }
    if (!spec) {
        cli_error("usage: cembed pull ORG/NAME[@REVISION] (a Hub repo id, e.g. " DEFAULT_MODEL_REPO ")");
        return EXIT_USAGE;
    }
    char repo[256], rev[300], dir[4096];
    if (hub_split(spec, repo, sizeof repo, rev, sizeof rev)) { /* the message says what is wrong: the id or the revision */
        cli_error("%s; usage: cembed pull ORG/NAME[@REVISION]", cembed_last_error());
        return EXIT_USAGE;
    }
    hub_opts o;
    if (hub_opts_from_env(&o)) {
        cli_error("%s", cembed_last_error());
        return EXIT_USAGE;
    }
    if (hub_resolve(&o, repo, rev, 1, dir, sizeof dir)) {
        cli_error("%s", cembed_last_error());
        return EXIT_FAIL;
    }
    /* the files are there; that they make a model this engine runs is checked by opening it */
    cembed_options mo = {.threads = 1, .max_batch = 1};
    cembed_model *m;
    if (cembed_model_open(dir, &mo, &m)) {
        cli_error("%s was downloaded to %s but does not open: %s", spec, dir, cembed_last_error());
        return EXIT_FAIL;
    }
    cembed_model_info i;
    cembed_model_get_info(m, &i);
    log_info("%s: %d dimensions, %d tokens max, %s pooling; use it with --model %s", spec, i.hidden, i.max_seq_len,
             i.pooling, spec);
    cembed_model_free(m);
    printf("%s\n", dir);
    return EXIT_OK;   /* main flushes stdout and reports a failed write */
}
