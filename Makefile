# arca — one non-recursive Makefile for the whole tree.
#   make [V=1]           build libarca.a and the binaries into build/
#   make check           unit + integration tests, fuzz corpus replay
#   make check-asan      the same under AddressSanitizer + UBSan (build-asan/)
#   make bench           benchmarks (prints ratios against references)
#   make fuzz            libFuzzer targets with clang (build-fuzz/), FUZZ_SECONDS each
#   make install DESTDIR=... PREFIX=...
#   make clean

V ?= 0
Q := $(if $(filter 1,$(V)),,@)
E := $(if $(filter 1,$(V)),@true,@printf '  %-7s %s\n')

BUILD ?= build
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/arca
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/arca
FUZZ_SECONDS ?= 60

PKGS := openssl tss2-esys tss2-mu tss2-tctildr tss2-rc json-c libevent_extra libevent_core libevent_openssl \
	libcryptsetup
# lib/firewall.c loads libnftables when first used (dlopen): its header
# only; benches that compare against it link it.
PKG_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(PKGS) libnftables 2>/dev/null))
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
NFT_LIBS := $(shell pkg-config --libs libnftables 2>/dev/null)
CRITERION_CFLAGS := $(shell pkg-config --cflags criterion 2>/dev/null)
CRITERION_LIBS := $(shell pkg-config --libs criterion 2>/dev/null)

CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wno-unused-parameter \
	-Wmissing-prototypes -Wstrict-prototypes -Wvla -Wimplicit-fallthrough -Wno-format-truncation
ifneq ($(findstring clang,$(CC)),)
  WARNINGS += -Wno-unknown-warning-option
endif
HARDEN := -fstack-protector-strong -fPIE
ifeq ($(SANITIZE),1)
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(FUZZ),1)
  SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
else
  HARDEN += -D_FORTIFY_SOURCE=2
endif
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARNINGS) $(HARDEN) $(SANFLAGS) -Ilib $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
ALL_LDFLAGS := -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(SANFLAGS) $(LDFLAGS)

# --- libarca ----------------------------------------------------------------
LIB_SRCS := $(sort $(wildcard lib/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIBARCA := $(BUILD)/libarca.a

# --- programs: folder -> binary ----------------------------------------------
PROGRAM_DIRS := cli:arca bootstrapper:arca-bootstrapper join-service:arca-join-service \
	disk-mapper:arca-disk-mapper measured-boot:arca-measure
PROGRAMS :=
define program_rule
$(1)_SRCS := $$(sort $$(wildcard $(1)/*.c))
ifneq ($$($(1)_SRCS),)
PROGRAMS += $(BUILD)/$(2)
$(BUILD)/$(2): $$($(1)_SRCS:%.c=$(BUILD)/%.o) $(LIBARCA)
	$$(E) LINK $$@
	$$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(PKG_LIBS)
endif
endef
$(foreach p,$(PROGRAM_DIRS),$(eval $(call program_rule,$(word 1,$(subst :, ,$(p))),$(word 2,$(subst :, ,$(p))))))

# --- tests ------------------------------------------------------------------
HELPER_SRCS := $(sort $(wildcard tests/helpers/*.c))
HELPER_OBJS := $(HELPER_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(sort $(wildcard tests/unit/test-*.c tests/integration/test-*.c))
TESTS := $(patsubst %.c,$(BUILD)/%,$(TEST_SRCS))
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz-*.c))
FUZZ_REPLAY := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%-replay,$(FUZZ_SRCS))
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/fuzz/%,$(FUZZ_SRCS))
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
TOOLS := $(patsubst %.c,$(BUILD)/%,$(TOOL_SRCS))
SHELL_TESTS := $(sort $(wildcard tests/integration/test-*.sh tests/vm/test-*.sh))
BENCH_SRCS := $(sort $(wildcard tests/bench/bench-*.c))
BENCHES := $(patsubst %.c,$(BUILD)/%,$(BENCH_SRCS))

.PHONY: all check check-asan bench fuzz fuzz-build install clean format tests
.DEFAULT_GOAL := all
# Keep objects of test and fuzz binaries between runs.
.SECONDARY:

all: $(LIBARCA) $(PROGRAMS)

$(LIBARCA): $(LIB_OBJS)
	$(E) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(E) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) $(if $(filter tests/%,$<),$(CRITERION_CFLAGS) -Itests/helpers) -c -o $@ $<

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(HELPER_OBJS) $(LIBARCA)
	$(E) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CRITERION_LIBS)

$(BUILD)/tests/integration/%: $(BUILD)/tests/integration/%.o $(HELPER_OBJS) $(LIBARCA)
	$(E) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CRITERION_LIBS)

# Tests of a component's module link that module's object too.
$(BUILD)/tests/integration/test-keywait: $(BUILD)/tests/integration/test-keywait.o $(BUILD)/disk-mapper/keywait.o \
		$(HELPER_OBJS) $(LIBARCA)
	$(E) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CRITERION_LIBS)
$(BUILD)/tests/unit/test-discover: $(BUILD)/tests/unit/test-discover.o $(BUILD)/disk-mapper/discover.o \
		$(HELPER_OBJS) $(LIBARCA)
	$(E) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CRITERION_LIBS)

$(BUILD)/tests/fuzz/%-replay: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay-main.o $(LIBARCA)
	$(E) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/fuzz/replay-main.o: tests/fuzz/replay-main.c
	@mkdir -p $(dir $@)
	$(E) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/bench/%: $(BUILD)/tests/bench/%.o $(HELPER_OBJS) $(LIBARCA)
	$(E) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(NFT_LIBS) $(CRITERION_LIBS)

$(BUILD)/tests/tools/%: $(BUILD)/tests/tools/%.o $(LIBARCA)
	$(E) LINK $@
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

tests: all $(TESTS) $(FUZZ_REPLAY) $(TOOLS)

# Tests find the binaries through ARCA_BUILD_DIR.
check: tests
	$(Q)ARCA_BUILD_DIR=$(abspath $(BUILD)) scripts/run-tests.sh $(TESTS) $(SHELL_TESTS) -- $(FUZZ_REPLAY)

check-asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan SANITIZE=1 CFLAGS="-O1 -g" check

bench: all $(BENCHES)
	$(Q)ARCA_BUILD_DIR=$(abspath $(BUILD)) scripts/run-bench.sh $(BENCHES) $(sort $(wildcard tests/bench/bench-*.sh))

# libFuzzer builds need clang; the whole library is instrumented.
fuzz:
	$(Q)$(MAKE) --no-print-directory BUILD=build-fuzz FUZZ=1 CC=clang CFLAGS="-O1 -g" fuzz-build
	$(Q)for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
		mkdir -p build-fuzz/corpus/$$n; \
		echo "  FUZZ    $$n ($(FUZZ_SECONDS)s)"; \
		build-fuzz/tests/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			build-fuzz/corpus/$$n tests/fuzz/corpus/$$n || exit 1; done

fuzz-build: $(FUZZERS)

$(BUILD)/tests/fuzz/fuzz-%: $(BUILD)/tests/fuzz/fuzz-%.o $(LIBARCA)
	$(E) LINK $@
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	$(if $(wildcard image/*.service),install -m 0644 $(wildcard image/*.service) $(DESTDIR)$(UNITDIR)/)
	install -m 0644 README.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/

format:
	clang-format -i $(wildcard lib/*.[ch] cli/*.[ch] bootstrapper/*.[ch] tests/*/*.[ch])

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
