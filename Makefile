# Thin wrapper over CMake. The two commands of the README:
#   make run   build (Release) and run the bundled default job, writing reports/
#   make test  build with ASan+UBSan and run every ctest suite
# Each first installs the Debian packages it needs (harness/deps.sh).
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc)
BUILD ?= build
TEST_BUILD ?= build-test

.PHONY: all deps build run test clean golden-env

all: build

deps:
	@bash harness/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	bash harness/run.sh $(BUILD)/evabench

test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Release -DEVABENCH_SANITIZE=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS)

golden-env:
	bash golden/setup.sh

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
