# earlystop - build, test, install, demo.
#
#   make            the libraries (static and shared) and build/earlystop
#   make test       install missing deps, build with -Werror, run every test and
#                   the layer and install checks, then rebuild and rerun the
#                   suite under ASan + UBSan (build-asan/)
#   make demo       install missing deps, build, run the main job on data/
#   make install    PREFIX=/usr/local DESTDIR= : headers, libraries (versioned
#                   sonames), the CLI, its man page, pkg-config files
#   make bench      build and run the benchmarks under bench/
#   make fuzz       build the libFuzzer targets (clang) and run each briefly
#   make prior      data/prior.json, the meta-learner's prior (minutes)
#   make stopper    data/stopper.json + the built-in `learned` (seconds)
#
#   One line per step (CC file, AR lib, LD binary, TEST binary); V=1 prints
#   the full command lines and every test's own output.
#
# Layers, one library each, each linked against the layers below it only and
# with -Wl,--no-undefined, so a call upwards does not link (docs/architecture.md):
#   libearlystop         src/core    answers, interner, tally, rules, policy,
#                                    session: libc + libm only, embeddable
#   libearlystop-replay  src/replay  traces in memory, replay, oracles, report,
#                                    threads (pthreads)
#   libearlystop-io      src/io      trace files, import, policy files
#                                    (jansson, pcre2)
#   libearlystop-lm      src/lm      the built-in model (its own pthread pool)
#   libearlystop-tune    src/tune    fronts, exact sweeps, Learn-then-Test
#   libearlystop-online  src/online  the controller in the loop of a replayed stream
#   libearlystop-meta    src/meta    meta-learning: a prior over tasks, adapt
#                                    from k items (tune, jansson)
#   libearlystop-serve   src/serve   OpenAI-compatible server and early-stopping
#                                    proxy (libmicrohttpd, libcurl, jansson)
#   libearlystop-learn   src/learn   learned stoppers: episodes, FQI, REINFORCE
#   build/earlystop      cli/        the command line, a thin front

V ?= 0
ifeq ($(V),1)
Q :=
say = :
else
Q := @
say = printf '  %-5s %s\n'
endif
MAKEFLAGS += --no-print-directory

VERSION   := 0.2.0
SOVERSION := 0
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
LIBDIR    ?= $(PREFIX)/lib
INCLUDEDIR?= $(PREFIX)/include
MANDIR    ?= $(PREFIX)/share/man

BUILD   ?= build
CC      ?= cc
OPT     ?= -O2 -g
SAN     ?=
PKGS    := jansson libpcre2-8
CMOCKA  := cmocka

# pkg-config is asked lazily so that `make deps` can run before the packages exist.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# serve layer: HTTP server and client (scripts/deps.sh installs them)
SERVE_PKGS := libmicrohttpd libcurl
SERVE_CFLAGS = $(shell pkg-config --cflags $(SERVE_PKGS) 2>/dev/null)
SERVE_LIBS   = $(shell pkg-config --libs $(SERVE_PKGS) 2>/dev/null)
CMOCKA_CFLAGS = $(shell pkg-config --cflags $(CMOCKA) 2>/dev/null)
JANSSON_CFLAGS = $(shell pkg-config --cflags jansson 2>/dev/null)
JANSSON_LIBS   = $(shell pkg-config --libs jansson 2>/dev/null)
CMOCKA_LIBS   = $(shell pkg-config --libs $(CMOCKA) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
DEFS    := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
# Only what a header marks ES_API leaves a shared library.
CFLAGS_ALL = -std=c11 $(WARN) $(OPT) $(SAN) -fPIC -fvisibility=hidden $(CFLAGS)
LDLIBS_ALL = $(SERVE_LIBS) $(PKG_LIBS) -lm -pthread $(SAN)

CORE_SRC   := $(wildcard src/core/*.c src/core/rules/*.c)
REPLAY_SRC := $(wildcard src/replay/*.c)
IO_SRC     := $(wildcard src/io/*.c)
LM_SRC     := $(wildcard src/lm/*.c)
TUNE_SRC   := $(wildcard src/tune/*.c)
ONLINE_SRC := $(wildcard src/online/*.c)
META_SRC   := $(wildcard src/meta/*.c)
SERVE_SRC  := $(wildcard src/serve/*.c)
LEARN_SRC  := $(wildcard src/learn/*.c)
CLI_SRC    := $(wildcard cli/*.c)
TEST_SRC   := $(wildcard tests/test_*.c)
BENCH_SRC  := $(wildcard bench/bench_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJ   := $(call obj,$(CORE_SRC))
REPLAY_OBJ := $(call obj,$(REPLAY_SRC))
IO_OBJ     := $(call obj,$(IO_SRC))
LM_OBJ     := $(call obj,$(LM_SRC))
TUNE_OBJ   := $(call obj,$(TUNE_SRC))
ONLINE_OBJ := $(call obj,$(ONLINE_SRC))
META_OBJ   := $(call obj,$(META_SRC))
SERVE_OBJ  := $(call obj,$(SERVE_SRC))
LEARN_OBJ  := $(call obj,$(LEARN_SRC))
CLI_OBJ    := $(call obj,$(CLI_SRC))
TEST_BIN   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCH_BIN  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

LAYERS  := earlystop earlystop-replay earlystop-io earlystop-lm earlystop-tune
LAYERS  += earlystop-online
LAYERS  += earlystop-meta
# static archives, top layer first (the order a static link needs)
LIBS    := $(BUILD)/libearlystop-online.a $(BUILD)/libearlystop-tune.a $(BUILD)/libearlystop-lm.a $(BUILD)/libearlystop-io.a \
           $(BUILD)/libearlystop-replay.a $(BUILD)/libearlystop.a
LIBS    := $(BUILD)/libearlystop-meta.a $(LIBS)
LAYERS  += earlystop-serve
LIBS    := $(BUILD)/libearlystop-serve.a $(LIBS)
LAYERS  += earlystop-learn
LIBS    := $(BUILD)/libearlystop-learn.a $(LIBS)
SHLIBS  := $(foreach l,$(LAYERS),$(BUILD)/lib$(l).so.$(VERSION))
HEADERS := include/earlystop.h include/earlystop_replay.h include/earlystop_io.h include/earlystop_lm.h \
           include/earlystop_tune.h
HEADERS += include/earlystop_online.h
HEADERS += include/earlystop_meta.h
HEADERS += include/earlystop_serve.h
HEADERS += include/earlystop_learn.h

.PHONY: all lib cli deps test test-run test-asan check-layers check-install demo bench fuzz install clean
.DEFAULT_GOAL := all

all: lib cli
lib: $(LIBS) $(SHLIBS)
cli: $(BUILD)/earlystop

# Each layer sees the public headers and its own internal ones, nothing more.
$(BUILD)/obj/src/core/%.o: CPP_LAYER := -Iinclude -Isrc/core
$(BUILD)/obj/src/replay/%.o: CPP_LAYER := -Iinclude -Isrc/replay
$(BUILD)/obj/src/io/%.o: CPP_LAYER = -Iinclude -Isrc/io -Isrc/common $(PKG_CFLAGS)
$(BUILD)/obj/src/lm/%.o: CPP_LAYER := -Iinclude -Isrc/lm -Isrc/common
$(BUILD)/obj/src/tune/%.o: CPP_LAYER := -Iinclude -Isrc/tune
$(BUILD)/obj/src/online/%.o: CPP_LAYER := -Iinclude -Isrc/online
$(BUILD)/obj/src/meta/%.o: CPP_LAYER = -Iinclude -Isrc/meta -Isrc/common $(JANSSON_CFLAGS)
$(BUILD)/obj/src/serve/%.o: CPP_LAYER = -Iinclude -Isrc/serve $(PKG_CFLAGS) $(SERVE_CFLAGS)
$(BUILD)/obj/src/serve/%.o: XFLAGS := -pthread
$(BUILD)/obj/src/learn/%.o: CPP_LAYER := -Iinclude -Isrc/learn
# The lm's `omp simd` loops need only -fopenmp-simd, not an OpenMP runtime:
# every thread here is a pthread that waits passively (OpenMP's spinning wait
# made 2 threads slower than 1 on a busy machine).
$(BUILD)/obj/src/lm/%.o: XFLAGS := -fopenmp-simd -pthread
$(BUILD)/obj/src/replay/%.o $(BUILD)/obj/src/io/%.o: XFLAGS := -pthread
$(BUILD)/obj/cli/%.o: CPP_LAYER = -Iinclude -Icli -Isrc/common $(PKG_CFLAGS)
$(BUILD)/obj/tests/%.o $(BUILD)/obj/bench/%.o: CPP_LAYER = -Iinclude -Isrc -Isrc/common -Itests $(PKG_CFLAGS) $(SERVE_CFLAGS) $(CMOCKA_CFLAGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(say) CC $<
	$(Q)$(CC) $(CPP_LAYER) $(DEFS) $(CFLAGS_ALL) $(XFLAGS) -MMD -MP -c $< -o $@

# ---------------------------------------------------------------- libraries

define static_lib
$(BUILD)/lib$(1).a: $(2)
	@mkdir -p $$(dir $$@)
	@$$(say) AR $$@
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(eval $(call static_lib,earlystop,$(CORE_OBJ)))
$(eval $(call static_lib,earlystop-replay,$(REPLAY_OBJ)))
$(eval $(call static_lib,earlystop-io,$(IO_OBJ)))
$(eval $(call static_lib,earlystop-lm,$(LM_OBJ)))
$(eval $(call static_lib,earlystop-tune,$(TUNE_OBJ)))
$(eval $(call static_lib,earlystop-online,$(ONLINE_OBJ)))
$(eval $(call static_lib,earlystop-meta,$(META_OBJ)))
$(eval $(call static_lib,earlystop-serve,$(SERVE_OBJ)))
$(eval $(call static_lib,earlystop-learn,$(LEARN_OBJ)))

# lib$(1).so.VERSION with soname lib$(1).so.SOVERSION and the two links;
# --no-undefined: every symbol must come from $(3) (the layers below, libc).
define shared_lib
$(BUILD)/lib$(1).so.$(VERSION): $(2) $(4)
	@$$(say) LD $$@
	$$(Q)$$(CC) -shared -Wl,--no-undefined -Wl,-soname,lib$(1).so.$(SOVERSION) -o $$@ $(2) -L$(BUILD) $(3) $$(SAN)
	$$(Q)ln -sf lib$(1).so.$(VERSION) $(BUILD)/lib$(1).so.$(SOVERSION)
	$$(Q)ln -sf lib$(1).so.$(SOVERSION) $(BUILD)/lib$(1).so
endef
$(eval $(call shared_lib,earlystop,$(CORE_OBJ),-lm,))
$(eval $(call shared_lib,earlystop-replay,$(REPLAY_OBJ),-learlystop -lm -pthread,$(BUILD)/libearlystop.so.$(VERSION)))
$(eval $(call shared_lib,earlystop-io,$(IO_OBJ),-learlystop-replay -learlystop $$(PKG_LIBS) -pthread,$(BUILD)/libearlystop-replay.so.$(VERSION)))
$(eval $(call shared_lib,earlystop-lm,$(LM_OBJ),-learlystop -lm -pthread,$(BUILD)/libearlystop.so.$(VERSION)))
$(eval $(call shared_lib,earlystop-tune,$(TUNE_OBJ),-learlystop-replay -learlystop -lm -pthread,$(BUILD)/libearlystop-replay.so.$(VERSION)))
$(eval $(call shared_lib,earlystop-online,$(ONLINE_OBJ),-learlystop-replay -learlystop -lm,$(BUILD)/libearlystop-replay.so.$(VERSION)))
$(eval $(call shared_lib,earlystop-meta,$(META_OBJ),-learlystop-tune -learlystop-replay -learlystop $$(JANSSON_LIBS) -lm,$(BUILD)/libearlystop-tune.so.$(VERSION)))
$(eval $(call shared_lib,earlystop-serve,$(SERVE_OBJ),-learlystop-io -learlystop-replay -learlystop-lm -learlystop $$(SERVE_LIBS) $$(PKG_LIBS) -lm -pthread,$(BUILD)/libearlystop-io.so.$(VERSION) $(BUILD)/libearlystop-lm.so.$(VERSION)))
$(eval $(call shared_lib,earlystop-learn,$(LEARN_OBJ),-learlystop-tune -learlystop-replay -learlystop -lm -pthread,$(BUILD)/libearlystop-tune.so.$(VERSION)))

$(BUILD)/earlystop: $(CLI_OBJ) $(LIBS)
	@$(say) LD $@
	$(Q)$(CC) -o $@ $(CLI_OBJ) $(LIBS) $(LDLIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(LIBS)
	@mkdir -p $(dir $@)
	@$(say) LD $@
	$(Q)$(CC) -o $@ $< $(LIBS) $(LDLIBS_ALL) $(CMOCKA_LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBS)
	@mkdir -p $(dir $@)
	@$(say) LD $@
	$(Q)$(CC) -o $@ $< $(LIBS) $(LDLIBS_ALL)

# ------------------------------------------------------------------ install

$(BUILD)/earlystop.1: $(BUILD)/earlystop scripts/manpage.sh
	@$(say) MAN $@
	$(Q)scripts/manpage.sh $(BUILD)/earlystop $(VERSION) > $@

install: all $(BUILD)/earlystop.1
	@$(say) INST "$(DESTDIR)$(PREFIX)"
	$(Q)scripts/install.sh "$(BUILD)" "$(DESTDIR)" "$(PREFIX)" "$(BINDIR)" "$(LIBDIR)" "$(INCLUDEDIR)" \
	    "$(MANDIR)" "$(VERSION)" "$(SOVERSION)" "$(LAYERS)" "$(HEADERS)"

# ------------------------------------------------------------------- checks

deps:
	@scripts/deps.sh

# The core links libc and libm only; every shared library exports es_*
# symbols only (checked on the plain build: sanitizers add their runtimes).
check-layers: lib
	@$(say) CHECK "layers: $(notdir $(SHLIBS))"
	$(Q)scripts/check-layers.sh $(BUILD) $(VERSION)

# A clean install into a temporary prefix; examples/ built against it with
# pkg-config alone and run.
check-install: lib cli $(BUILD)/earlystop.1
	@$(say) CHECK "make install + examples/ built with pkg-config"
	$(Q)scripts/check-install.sh $(BUILD)

test-run: all $(TEST_BIN)
	@V=$(V) scripts/run-tests.sh $(BUILD)
	$(Q)if [ -z "$(SAN)" ]; then $(MAKE) check-layers check-install; fi

test-asan:
	@$(say) ASAN "rebuild and rerun the tests under ASan + UBSan in build-asan/"
	$(Q)$(MAKE) BUILD=build-asan OPT="-O1 -g" SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test-run

test: deps
	$(Q)$(MAKE) test-run
	$(Q)$(MAKE) test-asan

demo: deps
	$(Q)$(MAKE) all
	@scripts/demo.sh $(BUILD)

bench: all $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

fuzz: deps
	@scripts/fuzz.sh

# data/prior.json, the meta-learner's prior: every shared trace file plus
# nine built-in model tasks (scripts/make-prior.sh; minutes, most generating)
.PHONY: prior
prior: all
	@scripts/make-prior.sh data/prior.json

# data/stopper.json, the shipped learned stopper, and its C source
# src/core/rules/learned_builtin.c (scripts/make-stopper.sh; docs/learning.md)
.PHONY: stopper
stopper: all
	@scripts/make-stopper.sh data/stopper.json
	$(Q)$(MAKE) all

clean:
	@$(say) RM "build build-asan build-fuzz"
	$(Q)rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
