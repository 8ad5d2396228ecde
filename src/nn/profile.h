/* The timed kernel table of a profiled run (profile.c, base/prof.h). */
#ifndef CEMBED_NN_PROFILE_H
#define CEMBED_NN_PROFILE_H

#include "nn/kernels.h"

/* k itself unless CEMBED_PROFILE is on; then a copy of k whose entries time
 * the real ones (the reference table is never wrapped). Not thread-safe:
 * call while opening a model. Cannot fail. */
const nn_kernels *nn_kernels_profiled(const nn_kernels *k);

#endif
