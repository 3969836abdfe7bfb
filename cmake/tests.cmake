# tests.cmake: the Check suites and CLI tests (included by CMakeLists.txt).
#   tests/<label>_<name>.c  one Check binary per file (its main is tests/common/check_main.c),
#                           ctest label <label>
#   tests/cli_<name>.sh     shell tests of the CLI, ctest label cli
#   tests/lint_layers.py    the structure rules of the tree (label lint)
#   tests/golden_<name>.sh  shell tests that need the golden environment (golden/.venv: PyTorch,
#                           open_clip, timm), ctest label golden; `make test` runs them when
#                           golden/.venv exists (.ci/run makes it), `make test-golden` too
#   tests/example/          an out-of-tree project built against the installed package (label
#                           install)
# GPU suites exit 77 (ctest "skipped") without a device; a build without CUDA lists them as
# skipped. Suites that only a normal build runs in full say so in their own output.
enable_testing()
set(EVA_TEST_ENV "EVA_SOURCE_DIR=${CMAKE_SOURCE_DIR};EVABENCH=$<TARGET_FILE:evabench>;CK_DEFAULT_TIMEOUT=600;ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
add_library(eva_check_main OBJECT ${CMAKE_SOURCE_DIR}/tests/common/check_main.c)
target_include_directories(eva_check_main PUBLIC ${CMAKE_SOURCE_DIR}/tests/common)
target_link_libraries(eva_check_main PUBLIC PkgConfig::CHECK)

file(GLOB EVA_TEST_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/*_*.c)
foreach(src ${EVA_TEST_SRC})
  get_filename_component(tname ${src} NAME_WE)
  string(REGEX MATCH "^[a-z]+" tlabel ${tname})
  if(tlabel STREQUAL "gpu" AND NOT EVA_HAVE_CUDA)
    add_test(NAME ${tname} COMMAND sh -c "echo '${tname}: skipped, this build has no CUDA'; exit 77")
  else()
    add_executable(test_${tname} ${src})
    target_compile_options(test_${tname} PRIVATE ${EVA_WARN} -Wno-gnu-zero-variadic-macro-arguments)
    target_link_libraries(test_${tname} PRIVATE eva_check_main evaharness PkgConfig::CHECK)
    target_compile_definitions(test_${tname} PRIVATE EVA_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    add_test(NAME ${tname} COMMAND test_${tname})
  endif()
  set_tests_properties(${tname} PROPERTIES LABELS ${tlabel} SKIP_RETURN_CODE 77
    ENVIRONMENT "${EVA_TEST_ENV}" WORKING_DIRECTORY ${CMAKE_BINARY_DIR} TIMEOUT 1800)
endforeach()

# The 80,000-prompt zero-shot case runs on its own: in full in a normal build (label full,
# `make test-full`), on 8,000 prompts in the sanitizer build, and never inside unit_zeroshot.
if(TARGET test_unit_zeroshot)
  set_property(TEST unit_zeroshot APPEND PROPERTY ENVIRONMENT "CK_EXCLUDE_TAGS=prompts80k")
  if(EVABENCH_SANITIZE)
    set(eva_zs_name unit_zeroshot_prompts_8000_sanitizer)
    set(eva_zs_env "CK_INCLUDE_TAGS=prompts80k;EVA_ZS_PROMPTS=8000")
    set(eva_zs_label unit)
  else()
    set(eva_zs_name full_zeroshot_prompts_80000)
    set(eva_zs_env "CK_INCLUDE_TAGS=prompts80k;EVA_ZS_PROMPTS=all")
    set(eva_zs_label full)
  endif()
  add_test(NAME ${eva_zs_name} COMMAND test_unit_zeroshot)
  set_tests_properties(${eva_zs_name} PROPERTIES LABELS ${eva_zs_label} ENVIRONMENT "${EVA_TEST_ENV};${eva_zs_env}"
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR} TIMEOUT 1800)
endif()

file(GLOB EVA_CLI_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cli_*.sh)
foreach(src ${EVA_CLI_TESTS})
  get_filename_component(tname ${src} NAME_WE)
  add_test(NAME ${tname} COMMAND bash ${src} $<TARGET_FILE:evabench>)
  set_tests_properties(${tname} PROPERTIES LABELS cli SKIP_RETURN_CODE 77
    ENVIRONMENT "${EVA_TEST_ENV}" WORKING_DIRECTORY ${CMAKE_BINARY_DIR} TIMEOUT 1800)
endforeach()

file(GLOB EVA_GOLDEN_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/golden_*.sh)
foreach(src ${EVA_GOLDEN_TESTS})
  get_filename_component(tname ${src} NAME_WE)
  add_test(NAME ${tname} COMMAND bash ${src} $<TARGET_FILE:evabench>)
  set_tests_properties(${tname} PROPERTIES LABELS golden SKIP_RETURN_CODE 77
    ENVIRONMENT "${EVA_TEST_ENV}" WORKING_DIRECTORY ${CMAKE_BINARY_DIR} TIMEOUT 900)
endforeach()

# Structure rules (layers, include cycles, no program run from library code, function length,
# nothing pointing outside the repository).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME lint_layers COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/tests/lint_layers.py ${CMAKE_SOURCE_DIR})
  set_tests_properties(lint_layers PROPERTIES LABELS lint TIMEOUT 120)
endif()

# The installed package seen from outside: install into a scratch prefix, configure and build
# tests/example against it with find_package(evabench) and with pkg-config, run it.
add_test(NAME install_example
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/example/run.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
set(eva_example_env "${EVA_TEST_ENV}")
if(EVABENCH_SANITIZE)
  list(APPEND eva_example_env "EXAMPLE_CFLAGS=-fsanitize=address,undefined")
endif()
set_tests_properties(install_example PROPERTIES LABELS install ENVIRONMENT "${eva_example_env}"
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR} TIMEOUT 900)
