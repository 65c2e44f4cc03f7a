# earlystop - build, test, demo.
#
#   make          libearlystop.a / .so, libearlystop-io.a, libearlystop-lm.a, build/earlystop
#   make test     install missing deps, build with -Werror, run every test, then
#                 rebuild and rerun the suite under ASan + UBSan (build-asan/)
#   make demo     install missing deps, build, run the main job on data/
#   make bench    build and run the benchmarks under bench/
#   make fuzz     build the libFuzzer targets (clang) and run each briefly
#
#   One line per step (CC file, AR lib, LD binary, TEST binary); V=1 prints
#   the full command lines and every test's own output.
#
# Layers: src/*.c is the core (libc + libm only, embeddable); src/io/*.c reads
# and writes JSON (jansson, pcre2; pthreads); src/lm/*.c is the built-in model (its
# own pthread pool, no OpenMP runtime).

# V=1: full command lines.  Otherwise one short line per step.
V ?= 0
ifeq ($(V),1)
Q :=
say = :
else
Q := @
say = printf '  %-5s %s\n'
endif
MAKEFLAGS += --no-print-directory

BUILD   ?= build
CC      ?= cc
OPT     ?= -O2 -g
SAN     ?=
PKGS    := jansson libpcre2-8
CMOCKA  := cmocka

# pkg-config is asked lazily so that `make deps` can run before the packages exist.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS = $(shell pkg-config --cflags $(CMOCKA) 2>/dev/null)
CMOCKA_LIBS   = $(shell pkg-config --libs $(CMOCKA) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CPPFLAGS_ALL := -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
CFLAGS_ALL = -std=c11 $(WARN) $(OPT) $(SAN) -fPIC $(CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lm -pthread $(SAN)
# No OpenMP runtime anywhere: the io layer's threads and the model's pool are
# pthreads that wait passively (OpenMP's spinning wait made 2 threads slower
# than 1 on a busy machine).  The lm's `omp simd` loops need only -fopenmp-simd.
LM_CFLAGS = $(CFLAGS_ALL) -fopenmp-simd -pthread

CORE_SRC := $(wildcard src/*.c)
IO_SRC   := $(wildcard src/io/*.c)
LM_SRC   := $(wildcard src/lm/*.c)
CLI_SRC  := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC:= $(wildcard bench/bench_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJ := $(call obj,$(CORE_SRC))
IO_OBJ   := $(call obj,$(IO_SRC))
LM_OBJ   := $(call obj,$(LM_SRC))
CLI_OBJ  := $(call obj,$(CLI_SRC))
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCH_BIN:= $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

LIBS := $(BUILD)/libearlystop-lm.a $(BUILD)/libearlystop-io.a $(BUILD)/libearlystop.a

.PHONY: all lib cli deps test test-run test-asan demo bench fuzz clean check-werror
.DEFAULT_GOAL := all

all: lib cli
lib: $(LIBS) $(BUILD)/libearlystop.so
cli: $(BUILD)/earlystop

$(BUILD)/obj/src/io/%.o: src/io/%.c
	@mkdir -p $(dir $@)
	@$(say) CC $<
	$(Q)$(CC) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(CFLAGS_ALL) -pthread -MMD -MP -c $< -o $@

$(BUILD)/obj/src/lm/%.o: src/lm/%.c
	@mkdir -p $(dir $@)
	@$(say) CC $<
	$(Q)$(CC) $(CPPFLAGS_ALL) $(LM_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(say) CC $<
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	@$(say) CC $<
	$(Q)$(CC) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(CMOCKA_CFLAGS) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libearlystop.a: $(CORE_OBJ)
	@mkdir -p $(dir $@)
	@$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

# The core links libc and libm only, so an inference engine can embed it.
$(BUILD)/libearlystop.so: $(CORE_OBJ)
	@$(say) LD $@
	$(Q)$(CC) -shared -o $@ $^ -lm $(SAN)

$(BUILD)/libearlystop-io.a: $(IO_OBJ)
	@mkdir -p $(dir $@)
	@$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libearlystop-lm.a: $(LM_OBJ)
	@mkdir -p $(dir $@)
	@$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

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

$(BUILD)/obj/bench/%.o: bench/%.c
	@mkdir -p $(dir $@)
	@$(say) CC $<
	$(Q)$(CC) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

deps:
	@scripts/deps.sh

# Run every test binary, then the CLI end-to-end suite (a cmocka binary too).
test-run: all $(TEST_BIN)
	@V=$(V) scripts/run-tests.sh $(BUILD)

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

clean:
	@$(say) RM "build build-asan build-fuzz"
	$(Q)rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
