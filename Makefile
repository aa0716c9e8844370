# Thin wrapper over CMake; the README's two commands are `make run` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
HOME_DIR ?= $(or $(AGENT_SECRETS_HOME),$(HOME)/.agent-secrets)
CMAKE_FLAGS ?=

.PHONY: deps build run test asan clean

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@test -f "$(HOME_DIR)/identity.age" || ./$(BUILD)/secrets init
	./$(BUILD)/secrets serve

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan:
	@$(MAKE) --no-print-directory test BUILD=build-asan CMAKE_FLAGS=-DENABLE_ASAN=ON

clean:
	rm -rf build build-asan
