# cembed: plain Makefile with pkg-config.
#   make                          build/cembed
#   make SANITIZE=address,undefined   build/san/cembed (ASan + UBSan)
#   make test                     unit tests, fuzz corpus replay, oracle and CLI tests,
#                                 then the same under the sanitizers
#   make run                      install deps, build, fetch the default model, serve
#   make grammars                 fetch tree-sitter and its grammars (pinned npm tarballs) into
#                                 build/grammars: the syntax chunker (else lines only)
#   make oracle                   regenerate tests/golden/tfjs-minilm.json (TF.js, ~40 min)
#   make fuzz                     libFuzzer binaries (clang) in build/fuzz/
#   make install [PREFIX=/usr/local] [DESTDIR=]   bin/cembed, share/cembed/fetch-model.sh, the README
#   make bench                    cembed against ONNX Runtime and PyTorch (bench/run.sh),
#                                 HTTP overhead, float writer micro-benchmark

# OpenBLAS (the fp32 reference GEMM) is opened at run time, single-threaded
# (src/nn/kernels.c): libopenblas-dev provides libopenblas.so.0, no linking.
# libcurl too, by the Hub client when it downloads (src/hub/curl_lib.c): its
# headers only, so that no other command loads its 30-odd libraries.
PKGS     := jansson libutf8proc libmicrohttpd sqlite3 libcrypto hiredis
CC       ?= cc
OPT      ?= -O2
WARN     := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Werror=implicit-function-declaration
CFLAGS   ?=
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Isrc $(shell pkg-config --cflags $(PKGS) libcurl)
# oneDNN (Debian's libdnnl-dev 2.6) has no pkg-config file; it runs on libgomp,
# whose thread count cembed sets (src/nn/gemm_dnnl.c)
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -ldnnl -lgomp -lm -lpthread
SIMD_AVX2 := -mavx2 -mfma
SIMD_AVX512 := $(SIMD_AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512dq

ifdef SANITIZE
BUILD    ?= build/san
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      := -O1
else
BUILD    ?= build
SANFLAGS :=
endif

ALL_CFLAGS := $(WARN) $(OPT) -g $(SANFLAGS) $(CFLAGS)

LIB_SRC  := $(wildcard src/base/*.c src/json/*.c src/tok/*.c src/model/*.c src/nn/*.c src/gov/*.c src/sched/*.c src/http/*.c src/pipe/*.c src/hub/*.c src/cache/*.c src/chunk/*.c src/worker/*.c)
APP_SRC  := $(wildcard app/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)

# tree-sitter (the syntax chunker, src/chunk/syntax.c): the runtime and the
# grammars scripts/fetch-grammars.sh put in $(TS_DIR), compiled once for every
# build variant (generated code: no warnings, no sanitizers) into libcembed.a.
# Without them src/chunk builds with the line chunker only.
TS_DIR   ?= build/grammars
TS_LANGS := $(if $(wildcard $(TS_DIR)/runtime/src/lib.c),$(sort $(patsubst $(TS_DIR)/lang/%/src/parser.c,%,\
              $(wildcard $(TS_DIR)/lang/*/src/parser.c))))
ifneq ($(TS_LANGS),)
TS_OBJ   := $(TS_DIR)/obj/runtime.o $(TS_LANGS:%=$(TS_DIR)/obj/%/parser.o) \
            $(patsubst $(TS_DIR)/lang/%/src/scanner.c,$(TS_DIR)/obj/%/scanner.o,$(wildcard $(TS_DIR)/lang/*/src/scanner.c))
TS_FLAGS := -I$(TS_DIR)/runtime/include -DCEMBED_TS $(foreach l,$(TS_LANGS),-DCEMBED_TS_$(shell echo $(l) | tr a-z A-Z))
LIB_OBJ  += $(TS_OBJ)
endif
# the chunker's language table follows what is fetched
$(BUILD)/obj/src/chunk/lang.o $(BUILD)/obj/src/chunk/syntax.o: EXTRA := $(TS_FLAGS)
$(BUILD)/obj/src/chunk/lang.o $(BUILD)/obj/src/chunk/syntax.o: $(wildcard $(TS_DIR)/langs.stamp) Makefile
TS_CC    := $(CC) -O2 -g0 -w -std=c11 -D_DEFAULT_SOURCE
$(TS_DIR)/obj/runtime.o: $(TS_DIR)/runtime/src/lib.c
	@mkdir -p $(dir $@)
	$(TS_CC) -I$(TS_DIR)/runtime/include -I$(TS_DIR)/runtime/src -c $< -o $@
$(TS_DIR)/obj/%/parser.o: $(TS_DIR)/lang/%/src/parser.c
	@mkdir -p $(dir $@)
	$(TS_CC) -O1 -I$(TS_DIR)/lang/$*/src -c $< -o $@
$(TS_DIR)/obj/%/scanner.o: $(TS_DIR)/lang/%/src/scanner.c
	@mkdir -p $(dir $@)
	$(TS_CC) -I$(TS_DIR)/lang/$*/src -c $< -o $@
APP_OBJ  := $(APP_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/*.c)
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)

.PHONY: all test unit run oracle fuzz bench clean deps grammars model install uninstall
all: $(BUILD)/cembed

$(BUILD)/obj/src/nn/kernels_avx2.o $(BUILD)/obj/src/nn/lowp_avx2.o: EXTRA := $(SIMD_AVX2)
$(BUILD)/obj/src/nn/kernels_avx512.o: EXTRA := $(SIMD_AVX512)
$(BUILD)/obj/src/nn/kernels_avx512bf16.o: EXTRA := $(SIMD_AVX512) -mavx512bf16
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(EXTRA) -MMD -MP -c $< -o $@

$(BUILD)/libcembed.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/cembed: $(APP_OBJ) $(BUILD)/libcembed.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

# unit tests: one binary, tests/unit/*.c (each may #include the .c it tests)
$(BUILD)/unit_tests: $(UNIT_SRC) $(BUILD)/libcembed.a $(wildcard tests/unit/*.h)
	$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) -o $@ $(UNIT_SRC) $(BUILD)/libcembed.a $(LDLIBS)

# the harness's own test: its runner with cases that pass, make no check, skip
$(BUILD)/harness_selftest: tests/unit/main.c tests/unit/selftest/harness_cases.c tests/unit/test.h $(BUILD)/libcembed.a
	$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) -o $@ tests/unit/main.c tests/unit/selftest/harness_cases.c \
		$(BUILD)/libcembed.a $(LDLIBS)

# fuzz targets linked with a replay driver (any compiler) for CI, and with
# libFuzzer (clang) for real fuzzing
$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay.c $(BUILD)/libcembed.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< fuzz/replay.c $(BUILD)/libcembed.a $(LDLIBS)

FUZZ_NAMES := $(FUZZ_SRC:fuzz/fuzz_%.c=%)
REPLAYS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)

fuzz:
	$(MAKE) BUILD=build/fuzz-lib CC=clang SANITIZE=address,undefined CFLAGS=-fsanitize=fuzzer-no-link build/fuzz-lib/libcembed.a
	@mkdir -p build/fuzz
	for n in $(FUZZ_NAMES); do \
	  clang $(CPPFLAGS) $(WARN) -O1 -g -fsanitize=fuzzer,address,undefined -o build/fuzz/fuzz_$$n fuzz/fuzz_$$n.c \
	    build/fuzz-lib/libcembed.a $(LDLIBS) || exit 1; done

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests

test:
	scripts/install-deps.sh
	$(MAKE) $(BUILD)/cembed $(BUILD)/unit_tests $(REPLAYS)
	tests/run.sh

deps:
	scripts/install-deps.sh

grammars:
	scripts/fetch-grammars.sh

model:
	scripts/fetch-model.sh

run: deps
	$(MAKE) all
	scripts/fetch-model.sh
	$(BUILD)/cembed serve $(if $(PORT),--port $(PORT))

oracle:
	tests/oracle/make_golden.sh $(or $(TFJS_MODEL),../shared/models/all-MiniLM-L6-v2-tfjs-uint8)

$(BUILD)/bench_float_writer: bench/float_writer.c $(BUILD)/libcembed.a
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libcembed.a $(LDLIBS)

$(BUILD)/gemm_peak: bench/gemm_peak.c $(BUILD)/libcembed.a
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libcembed.a $(LDLIBS)

$(BUILD)/attn_rate: bench/attn_rate.c $(BUILD)/libcembed.a
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libcembed.a $(LDLIBS)

$(BUILD)/bench_chunk_speed: bench/chunk_speed.c $(BUILD)/libcembed.a
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libcembed.a $(LDLIBS)

$(BUILD)/bench_embed_ids: bench/embed_ids.c $(BUILD)/libcembed.a
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libcembed.a $(LDLIBS)

bench: all $(BUILD)/bench_float_writer $(BUILD)/gemm_peak
	$(BUILD)/gemm_peak
	bench/run.sh
	bench/http_overhead.py
	$(BUILD)/bench_float_writer

PREFIX ?= /usr/local
install: $(BUILD)/cembed
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/cembed $(DESTDIR)$(PREFIX)/share/doc/cembed
	install -m 755 $(BUILD)/cembed $(DESTDIR)$(PREFIX)/bin/cembed
	install -m 755 scripts/fetch-model.sh $(DESTDIR)$(PREFIX)/share/cembed/fetch-model.sh
	install -m 644 README.md $(DESTDIR)$(PREFIX)/share/doc/cembed/README.md

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/cembed $(DESTDIR)$(PREFIX)/share/cembed/fetch-model.sh \
	  $(DESTDIR)$(PREFIX)/share/doc/cembed/README.md
	-rmdir $(DESTDIR)$(PREFIX)/share/cembed $(DESTDIR)$(PREFIX)/share/doc/cembed

clean:
	rm -rf build

-include $(wildcard $(BUILD)/obj/*/*/*.d $(BUILD)/obj/*/*.d)
