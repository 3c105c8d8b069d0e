
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/test_autograd.cc" "tests/CMakeFiles/txl_tests.dir/test_autograd.cc.o" "gcc" "tests/CMakeFiles/txl_tests.dir/test_autograd.cc.o.d"
  "/work/main/tests/test_f32_vs_f64.cc" "tests/CMakeFiles/txl_tests.dir/test_f32_vs_f64.cc.o" "gcc" "tests/CMakeFiles/txl_tests.dir/test_f32_vs_f64.cc.o.d"
  "/work/main/tests/test_grad_elementwise.cc" "tests/CMakeFiles/txl_tests.dir/test_grad_elementwise.cc.o" "gcc" "tests/CMakeFiles/txl_tests.dir/test_grad_elementwise.cc.o.d"
  "/work/main/tests/test_main.cpp" "tests/CMakeFiles/txl_tests.dir/test_main.cpp.o" "gcc" "tests/CMakeFiles/txl_tests.dir/test_main.cpp.o.d"
  "/work/main/tests/test_mlp_training.cc" "tests/CMakeFiles/txl_tests.dir/test_mlp_training.cc.o" "gcc" "tests/CMakeFiles/txl_tests.dir/test_mlp_training.cc.o.d"
  "/work/main/tests/test_tensor.cc" "tests/CMakeFiles/txl_tests.dir/test_tensor.cc.o" "gcc" "tests/CMakeFiles/txl_tests.dir/test_tensor.cc.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build-asan/CMakeFiles/txl_engine.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
