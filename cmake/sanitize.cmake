# Sanitizer and fuzzer instrumentation, applied to every target of the build
# (included from the top-level CMakeLists.txt before any target is defined).
#
#   -DTXL_SANITIZE=address,undefined   ASan + UBSan (g++ or clang++); any -fsanitize= list
#   -DTXL_FUZZ=ON                      libFuzzer harnesses in tests/fuzz (clang++ only);
#                                      the engine is then compiled with -fsanitize=fuzzer-no-link
#
# scripts/test.sh --sanitize and scripts/fuzz.sh configure these; docs/reliability.md
# says what runs where.
set(TXL_SANITIZE "" CACHE STRING "Sanitizers for every target, e.g. address,undefined (empty: none)")
option(TXL_FUZZ "Build the libFuzzer harnesses in tests/fuzz (needs clang++)" OFF)

if(TXL_SANITIZE)
  message(STATUS "txl: sanitizers ${TXL_SANITIZE}")
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${TXL_SANITIZE};-fno-omit-frame-pointer>")
  add_link_options(-fsanitize=${TXL_SANITIZE})
  if(TXL_SANITIZE MATCHES "undefined")
    # A UBSan finding aborts the process (and so fails its test) instead of printing
    # a line and carrying on.
    add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=undefined>)
    add_link_options(-fno-sanitize-recover=undefined)
  endif()
endif()

if(TXL_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "TXL_FUZZ=ON needs clang++ (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Coverage instrumentation for the engine and its harnesses; only the harness
  # executables link the libFuzzer driver (-fsanitize=fuzzer, tests/fuzz/CMakeLists.txt).
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>)
endif()
