# Thin wrapper over CMake. The two commands of the README:
#   make run    build (Release) and run the bundled default job, writing $(BUILD)/reports
#   make test   build with ASan+UBSan and run every ctest suite but label full (the suites of
#               label golden run when golden/.venv exists, else report themselves skipped)
# Each first installs the Debian packages it needs (harness/scripts/deps.sh) unless DEPS=0.
# Other targets: make build, make install PREFIX=..., make test-full (the normal build's longer
# suites: label full), make test-golden (golden/.venv with PyTorch, open_clip, timm, then the
# suites that need it: label golden), make clean.
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc)
BUILD ?= build
TEST_BUILD ?= build-test
REPORTS ?= $(BUILD)/reports
PREFIX ?= /usr/local
DEPS ?= 1

.PHONY: all deps build run test test-full test-golden install clean golden-env

all: build

deps:
ifeq ($(DEPS),1)
	@bash harness/scripts/deps.sh
endif

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	bash harness/scripts/run.sh $(BUILD)/evabench $(REPORTS)

test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Release -DEVABENCH_SANITIZE=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS) -LE full

test-full: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L full

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

test-golden: deps golden-env
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Release -DEVABENCH_SANITIZE=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS) -L golden

golden-env:
	bash golden/setup.sh

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
