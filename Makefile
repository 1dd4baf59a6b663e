# Thin wrapper over CMake: `make run` and `make test` on a fresh Debian 12 machine.
#
#   make deps    install missing Debian packages (non-interactive, idempotent); the only
#                target that runs apt, called once by run, test, fuzz and bench
#   make build   release build in build/ (installs nothing; a second run compiles nothing)
#   make run     deps + build + serve the default devices on sockets under ./run/
#   make test    deps + build + every test: normal, ASan+UBSan, TSan (threaded tests) and a
#                bounded fuzz run (FUZZ_SECONDS per target, default 20)
#   make fuzz    deps + the fuzz targets for longer (10 min each; FUZZ_SECONDS=N overrides)
#   make bench   deps (+ fio) + build + microbenchmarks (bench/RESULTS.md) and the NVMe
#                suite (bench/SUITE.md)
#
# The other targets (test-unit, test-asan, test-tsan, test-fuzz, fuzz-build, ...) assume
# `make deps` has been run.

SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 20
RUN_DIR ?= $(CURDIR)/run

DEB_PACKAGES := build-essential cmake pkg-config liburing-dev libhwloc-dev libck-dev \
	libjson-c-dev libcmocka-dev libbenchmark-dev linux-libc-dev clang \
	libclang-rt-14-dev cppcheck

.PHONY: all deps bench-deps install-pkgs build run test test-unit test-asan test-tsan test-fuzz fuzz fuzz-build fuzz-run fuzz-seeds bench clean install

all: build

deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(DEB_PACKAGES)"

# fio only for the suite's comparison row
bench-deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(DEB_PACKAGES) fio"

install-pkgs:
	@missing=""; \
	for p in $(PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$$SUDO apt-get update -qq </dev/null && \
		$$SUDO apt-get install -y -qq --no-install-recommends $$missing </dev/null; \
	fi

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVFURT_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

run: deps
	@$(MAKE) --no-print-directory build
	@mkdir -p $(RUN_DIR)
	@echo "vfu-rt: serving a GPIO device and a RAM-backed 1 GiB NVMe controller (Ctrl-C stops):"
	@echo "  $(RUN_DIR)/gpio0.sock  $(RUN_DIR)/nvme0.sock"
	@echo "inspect them with: $(BUILD)/vfu-ctl info $(RUN_DIR)/nvme0.sock"
	@echo "attach both to QEMU 10.1+ (guest RAM must be shared memory):"
	@echo "  $(abspath $(CURDIR)/../shared/qemu)/qemu-system-x86_64 -L $(abspath $(CURDIR)/../shared/qemu)/share -nographic -vga none -nic none \\"
	@echo "    -machine q35,memory-backend=mem -m 2G -object memory-backend-memfd,id=mem,size=2G,share=on \\"
	@echo "    -device '{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$(RUN_DIR)/gpio0.sock\",\"type\":\"unix\"}}' \\"
	@echo "    -device '{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$(RUN_DIR)/nvme0.sock\",\"type\":\"unix\"}}' \\"
	@echo "    -kernel /boot/vmlinuz-\$$(uname -r) -initrd /boot/initrd.img-\$$(uname -r) -append console=ttyS0"
	@echo "  (-L: the firmware directory of that QEMU build, ../shared/qemu/share; a packaged QEMU 10.1+ needs"
	@echo "  no -L. The -kernel/-initrd pair boots this host's Debian kernel to its initramfs shell on the"
	@echo "  console; put your guest's own -kernel/-initrd/-append, or a -drive with its disk, there instead."
	@echo "  -nographic: the guest console is this terminal, Ctrl-a x quits. TCG without /dev/kvm; add"
	@echo "  -accel kvm where KVM is available.)"
	exec $(BUILD)/vfu-rt --device gpio,socket=$(RUN_DIR)/gpio0.sock,socket_mode=0600 \
		--device nvme,socket=$(RUN_DIR)/nvme0.sock,socket_mode=0600,backend=ram,size=1G,queues=4

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan:
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DVFURT_WERROR=ON \
		-DVFURT_SANITIZE=address,undefined -DVFURT_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-asan -j$(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)

# The tests that run threads (runtime, stress, ring, worker, poller, dma_tree, dma_quota, the daemon of it_rpc) under
# ThreadSanitizer; any report fails the run.
TSAN_TESTS := runtime|stress|ring|worker|poller|nvme|bdev|hostile|guestfault|placement|dma_tree|dma_quota|rt_live|embed|it_rpc|upgrade|restart|state

test-tsan:
	cmake -S . -B $(BUILD)-tsan -DCMAKE_BUILD_TYPE=Debug -DVFURT_SANITIZE=thread \
		-DVFURT_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)-tsan -j$(JOBS)
	cd $(BUILD)-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
		ctest --output-on-failure -j$(JOBS) -R '$(TSAN_TESTS)'

# The fuzz targets (docs/fuzzing.md): libFuzzer + ASan + UBSan in $(BUILD)-fuzz, each run
# for $$(FUZZ_SECONDS) from its seeds (tests/fuzz/seeds/<target>) and a scratch corpus in
# $(BUILD)-fuzz/corpus/<target>; a crash is written to $(BUILD)-fuzz/artifacts/ and fails.
FUZZ_TARGETS := msg nvme pci
FUZZ_MAX_LEN ?= 16384
FUZZ_LONG_SECONDS := $(if $(filter-out file undefined default,$(origin FUZZ_SECONDS)),$(FUZZ_SECONDS),600)

fuzz-build:
	@command -v clang >/dev/null || { echo "fuzz: clang not available"; exit 1; }
	CC=clang CXX=clang++ cmake -S . -B $(BUILD)-fuzz -DCMAKE_C_FLAGS="-O1 -fsanitize=fuzzer-no-link" \
		-DCMAKE_BUILD_TYPE=Debug -DVFURT_FUZZ=ON -DVFURT_SANITIZE=address,undefined \
		-DVFURT_BENCH=OFF -DBUILD_TESTING=ON >/dev/null
	cmake --build $(BUILD)-fuzz -j$(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))

# SECS: seconds per target
fuzz-run:
	@mkdir -p $(BUILD)-fuzz/artifacts
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)-fuzz/corpus/$$t; \
		echo "fuzz_$$t: $(SECS)s"; \
		$(BUILD)-fuzz/tests/fuzz_$$t -max_total_time=$(SECS) -max_len=$(FUZZ_MAX_LEN) \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(BUILD)-fuzz/artifacts/$$t- \
			$(BUILD)-fuzz/corpus/$$t tests/fuzz/seeds/$$t 2>$(BUILD)-fuzz/fuzz_$$t.log || \
			{ tail -n 60 $(BUILD)-fuzz/fuzz_$$t.log; echo "fuzz_$$t: FINDING, see $(BUILD)-fuzz/artifacts/"; exit 1; }; \
		grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units" $(BUILD)-fuzz/fuzz_$$t.log; \
	done; echo "fuzz: $(SECS)s per target without a finding"

# Bounded, for `make test`: the whole step stays well under two minutes on two cores.
test-fuzz:
	@if command -v clang >/dev/null; then \
		$(MAKE) --no-print-directory fuzz-build && \
		$(MAKE) --no-print-directory fuzz-run SECS=$(FUZZ_SECONDS); \
	else echo "fuzz: clang not available, skipped"; fi

# Longer: 10 minutes per target unless FUZZ_SECONDS is given.
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@$(MAKE) --no-print-directory fuzz-run SECS=$(FUZZ_LONG_SECONDS)

# Regenerate tests/fuzz/seeds after changing tests/fuzz/seedgen.c (ctest checks them).
fuzz-seeds: build
	$(BUILD)/tests/seedgen tests/fuzz/seeds

# deps first and once; then the suites (a sub-make, so that -j cannot start them before it)
test: deps
	@$(MAKE) --no-print-directory test-unit test-asan test-tsan test-fuzz

bench: bench-deps
	bash bench/run.sh
	bash bench/suite

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-tsan $(BUILD)-fuzz
