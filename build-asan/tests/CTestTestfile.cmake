# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build-asan/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build-asan/tests/txl_tests_include-40536e2.cmake")
include("/work/main/build-asan/tests/txl_tests_include-dd456c3.cmake")
include("/work/main/build-asan/tests/txl_tests_include-29d4333.cmake")
