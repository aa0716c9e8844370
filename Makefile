# Thin wrapper over CMake; the README's two commands are `make run` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
HOME_DIR ?= $(or $(AGENT_SECRETS_HOME),$(HOME)/.agent-secrets)
CMAKE_FLAGS ?=

.PHONY: deps build run test asan clean bench deb

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Only what the daemon needs: its Debian packages and the `secrets` target
# (no tests, fuzz replays, benchmarks or npm packages; `make test` adds those).
run:
	@bash scripts/deps.sh --daemon
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target secrets
	@test -f "$(HOME_DIR)/identity.age" || ./$(BUILD)/secrets init
	./$(BUILD)/secrets serve

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# build/agent-secrets_VERSION_ARCH.deb (cmake/Packaging.cmake): CPack packs the
# `secrets` of $(BUILD), stripped, with the completions, man page, systemd user
# units and skill it generates; nothing is compiled a second time.
deb:
	@bash scripts/deps.sh --deb
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target secrets package_files
	@cd $(BUILD) && cpack -G DEB

# The benchmark suite (bench/run.py): fresh daemons in temp homes, a table, bench/results/latest.json.
bench: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target secrets bench_loadgen bench_hello
	python3 bench/run.py --build $(BUILD) $(BENCH_FLAGS)

asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan CMAKE_FLAGS=-DENABLE_ASAN=ON

# libFuzzer targets (fuzz/) built with clang in build-fuzz, each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

clean:
	rm -rf build build-asan build-fuzz
