# imgsink build. `make` builds build/imgsink; `make test` installs what is
# missing and runs every test (unit, sanitizer, real Kafka + MinIO); `make demo`
# runs the local pipeline end to end.

CC      ?= cc
# PLATFORM=trixie (the default): compile with gcc 14 inside the Debian 13
# sysroot that `make deps` builds (scripts/sysroot.sh) and link against its
# libraries; the binaries run on this host through the sysroot's loader.
# This is what the container image ships. PLATFORM=host: the host's own
# compiler and Debian 12 packages, in build/host.
PLATFORM ?= trixie
PKG_CONFIG ?= pkg-config
SYSROOT ?= $(or $(IMGSINK_SYSROOT),$(IMGSINK_CACHE),$(HOME)/.cache/imgsink)$(if $(IMGSINK_SYSROOT),,/sysroot-trixie)
ifeq ($(PLATFORM),trixie)
SYSROOT_RUN = IMGSINK_SYSROOT=$(SYSROOT) bash $(CURDIR)/scripts/sysroot-run.sh
CC          = $(SYSROOT_RUN) gcc
FUZZ_CC    ?= $(SYSROOT_RUN) clang
PKG_CONFIG  = $(SYSROOT_RUN) pkg-config
PLATFORM_ID = trixie $(shell cat $(SYSROOT)/.imgsink-stamp 2>/dev/null | cksum)
else ifeq ($(PLATFORM),host)
BUILD      ?= build/host
export BUILD
PLATFORM_ID = host
else
$(error PLATFORM=$(PLATFORM): expected trixie (Debian 13 sysroot, the default) or host)
endif
BUILD   ?= build
PKGS     = rdkafka vips avro-c libcurl libcrypto jansson libxml-2.0 libmicrohttpd
# Lazily evaluated (=): pkg-config only runs once deps are installed.
PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS   = $(shell $(PKG_CONFIG) --libs $(PKGS))

OPT     ?= -O2 -g
# The worker's allocator: MALLOC=glibc (the default: glibc's malloc, two
# arenas, connector/main.c) or MALLOC=jemalloc (links libjemalloc). glibc
# used less CPU, page faults and RSS than jemalloc as is and tuned:
# bench/notes.md ("Debian 13: the worker's hot path").
MALLOC  ?= glibc
MALLOC_LIBS = $(if $(filter jemalloc,$(MALLOC)),-ljemalloc)
WARN     = -Wall -Wextra -Werror
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) -Iconnector -Iprocessors $(PKG_CFLAGS) \
             -DIS_VERSION=\"$(VERSION)\"
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

SRC      = $(wildcard connector/*.c processors/*.c)
LIB_SRC  = $(filter-out connector/main.c,$(SRC))
OBJ      = $(SRC:%.c=$(BUILD)/obj/%.o)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TESTS    = $(patsubst test/unit/%.c,$(BUILD)/test/%,$(wildcard test/unit/test_*.c))

# Sanitizer build of the library objects and unit tests (no jemalloc: ASan
# brings its own allocator).
ASAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/asan/obj/%.o)
ASAN_TESTS   = $(patsubst test/unit/%.c,$(BUILD)/asan/test/%,$(wildcard test/unit/test_*.c))

.PHONY: all deps build test test-unit test-asan test-e2e demo clean format format-check \
        stack-start stack-stop corpus help-config build-tests

all: build
build: $(BUILD)/imgsink

$(BUILD)/imgsink: $(OBJ) $(BUILD)/.malloc
	@echo "  LD      $@"
	@$(CC) $(OPT) -o $@ $(OBJ) $(PKG_LIBS) $(MALLOC_LIBS) -lpthread -lm

# Relinked when MALLOC changes: $(BUILD)/.malloc is rewritten only then.
$(BUILD)/.malloc: FORCE
	@mkdir -p $(@D)
	@echo '$(MALLOC)' | cmp -s - $@ || echo '$(MALLOC)' >$@

$(BUILD)/obj/%.o: %.c $(wildcard connector/*.h processors/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/test/%: test/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB_OBJ) $(PKG_LIBS) $(shell $(PKG_CONFIG) --cflags --libs cmocka) -lpthread -lm

$(BUILD)/asan/obj/%.o: %.c $(wildcard connector/*.h processors/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	@$(CC) $(CFLAGS_ALL) $(ASAN_FLAGS) -c -o $@ $<

$(BUILD)/asan/test/%: test/unit/%.c $(ASAN_LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD asan $@"
	@$(CC) $(CFLAGS_ALL) $(ASAN_FLAGS) -o $@ $< $(ASAN_LIB_OBJ) $(PKG_LIBS) $(shell $(PKG_CONFIG) --cflags --libs cmocka) -lpthread -lm

deps:
	bash scripts/deps.sh

# `make test`: install, build, then every suite; test/run.sh prints the summary.
test: deps
	$(MAKE) --no-print-directory build-tests
	bash test/run.sh

build-tests: $(BUILD)/imgsink $(TESTS) $(ASAN_TESTS) $(BUILD)/mock/mock_worker plugins test-plugins

# In-process worker against librdkafka's mock cluster (run by test/e2e/t35).
$(BUILD)/mock/mock_worker: test/mock/mock_worker.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB_OBJ) $(PKG_LIBS) -lpthread -lm

test-unit: $(TESTS)
	bash test/run.sh unit

test-asan: $(ASAN_TESTS)
	bash test/run.sh asan

test-e2e: $(BUILD)/imgsink test-plugins
	bash test/run.sh e2e

demo: deps
	$(MAKE) --no-print-directory build
	bash scripts/demo.sh

stack-start:
	bash test/stack/start.sh
stack-stop:
	bash test/stack/stop.sh

corpus:
	bash test/corpus.sh

help-config: $(BUILD)/imgsink
	$(BUILD)/imgsink help config

format:
	clang-format -i connector/*.[ch] processors/*.[ch] test/unit/*.c test/plugins/*.c test/fuzz/*.c
format-check:
	clang-format --dry-run -Werror connector/*.[ch] processors/*.[ch] test/unit/*.c test/plugins/*.c test/fuzz/*.c

clean:
	rm -rf $(BUILD)

# Processor plugins (processors/plugin.h): one shared object per folder of
# processors/plugins/, built against libvips only.
PLUGINS = $(patsubst processors/plugins/%/,$(BUILD)/plugins/%.so,$(wildcard processors/plugins/*/))

# Plugins used only by the tests (test/plugins/NAME.c), never shipped.
TEST_PLUGINS = $(patsubst test/plugins/%.c,$(BUILD)/test/plugins/%.so,$(wildcard test/plugins/*.c))

.PHONY: plugins test-plugins fuzz fuzz-build
plugins: $(PLUGINS)
test-plugins: $(TEST_PLUGINS)

PLUGIN_LD = $(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) -fPIC -shared -Iprocessors \
	$(shell $(PKG_CONFIG) --cflags vips) -o $@ $(filter %.c,$^) $(shell $(PKG_CONFIG) --libs vips)

$(BUILD)/plugins/%.so: processors/plugins/%/*.c processors/plugin.h processors/processor.h
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(PLUGIN_LD)

$(BUILD)/test/plugins/%.so: test/plugins/%.c processors/plugin.h processors/processor.h
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(PLUGIN_LD)

# libFuzzer targets (test/fuzz/fuzz_*.c) with clang, ASan and UBSan.
# `make fuzz` runs each for FUZZ_SECONDS (default 60) from a seed corpus;
# test/run.sh fuzz runs them briefly as part of `make test`.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS    = -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Iconnector -Iprocessors $(PKG_CFLAGS) \
                -DIS_VERSION=\"$(VERSION)\"
FUZZ_LIB_SRC  = connector/envelope.c connector/avro_walk.c connector/keys.c connector/log.c connector/config.c \
                connector/claimcheck.c connector/sigv4.c connector/s3event.c connector/registry.c \
                $(wildcard processors/*.c)
FUZZ_TARGETS  = $(patsubst test/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard test/fuzz/fuzz_*.c))

fuzz-build: $(FUZZ_TARGETS)

$(BUILD)/fuzz/%: test/fuzz/%.c $(FUZZ_LIB_SRC) $(wildcard connector/*.h processors/*.h)
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	@$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LIB_SRC) $(PKG_LIBS) -lpthread -lm

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash test/run.sh fuzz

# `make test-faults`: the fault-injection suite alone (about 6 minutes; part
# of `make test` too). FAULT_SEED=N repeats a run.
.PHONY: test-faults
test-faults: deps
	$(MAKE) --no-print-directory build
	bash test/run.sh faults

# `make bench`: the benchmark, by hand (never part of `make test`): installs
# what it needs (bench/deps.sh: sharp from npm into the cache, Debian 13's
# ImageMagick into the sysroot, gnuplot), builds, runs bench/run.sh (about
# 25 minutes) and writes bench/results.md, bench/throughput.png and
# bench/rss.png. Also builds bench/limit against the host's Debian 12 libvips
# (build/host/bench/limit: the reference row limit-deb12).
# BENCH_WORKLOADS=small runs only the small-image workload (a few minutes;
# its own section of bench/results.md); default: standard and small.
.PHONY: bench
BENCH_TOOLS = $(BUILD)/bench/limit $(BUILD)/bench/lagwatch $(BUILD)/bench/pace
bench: deps
	bash bench/deps.sh
	$(MAKE) --no-print-directory build $(BENCH_TOOLS)
	$(if $(filter trixie,$(PLATFORM)),$(MAKE) --no-print-directory PLATFORM=host BUILD=build/host VIPS= build/host/bench/limit)
	BUILD=$(BUILD) BENCH_WORKLOADS="$(BENCH_WORKLOADS)" bash bench/run.sh

VIPS_CFLAGS = $(shell $(PKG_CONFIG) --cflags vips)
VIPS_LIBS   = $(shell $(PKG_CONFIG) --libs vips)
$(BUILD)/bench/limit: bench/limit.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) $(VIPS_CFLAGS) -o $@ $< $(VIPS_LIBS) -lpthread

$(BUILD)/bench/lagwatch: bench/lagwatch.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) $(shell $(PKG_CONFIG) --cflags rdkafka) -o $@ $< \
		$(shell $(PKG_CONFIG) --libs rdkafka)

$(BUILD)/bench/pace: bench/pace.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) $(shell $(PKG_CONFIG) --cflags rdkafka) -o $@ $< \
		$(shell $(PKG_CONFIG) --libs rdkafka)


# The analytics report of one day from the local stack's store:
# build/report/report-DATE.html (DATE=YYYY-MM-DD, default today UTC).
.PHONY: report
report:
	@bash scripts/report.sh $(DATE)
# Objects and binaries are rebuilt when the platform (or the sysroot's
# package list) changes: $(BUILD)/.platform is rewritten only then.
.PHONY: FORCE
$(BUILD)/.platform: FORCE
	@mkdir -p $(@D)
	@echo '$(PLATFORM_ID)' | cmp -s - $@ || echo '$(PLATFORM_ID)' >$@
$(OBJ) $(ASAN_LIB_OBJ) $(TESTS) $(ASAN_TESTS) $(BUILD)/mock/mock_worker $(PLUGINS) $(TEST_PLUGINS) \
	$(FUZZ_TARGETS) $(BENCH_TOOLS): $(BUILD)/.platform

# libvips of the sysroot loads its modules (HEIF/AVIF, JPEG XL) from the
# sysroot, not from the host's /usr/lib (processors/pipeline.c).
ifeq ($(PLATFORM),trixie)
CFLAGS_ALL += -DIS_VIPSHOME='"$(SYSROOT)/usr/lib"'
FUZZ_FLAGS += -DIS_VIPSHOME='"$(SYSROOT)/usr/lib"'
endif
