file(REMOVE_RECURSE
  "../bin/txl_tests"
  "../bin/txl_tests.pdb"
  "CMakeFiles/txl_tests.dir/test_autograd.cc.o"
  "CMakeFiles/txl_tests.dir/test_autograd.cc.o.d"
  "CMakeFiles/txl_tests.dir/test_f32_vs_f64.cc.o"
  "CMakeFiles/txl_tests.dir/test_f32_vs_f64.cc.o.d"
  "CMakeFiles/txl_tests.dir/test_grad_elementwise.cc.o"
  "CMakeFiles/txl_tests.dir/test_grad_elementwise.cc.o.d"
  "CMakeFiles/txl_tests.dir/test_main.cpp.o"
  "CMakeFiles/txl_tests.dir/test_main.cpp.o.d"
  "CMakeFiles/txl_tests.dir/test_mlp_training.cc.o"
  "CMakeFiles/txl_tests.dir/test_mlp_training.cc.o.d"
  "CMakeFiles/txl_tests.dir/test_tensor.cc.o"
  "CMakeFiles/txl_tests.dir/test_tensor.cc.o.d"
  "txl_tests_tests-29d4333.cmake"
  "txl_tests_tests-40536e2.cmake"
  "txl_tests_tests-dd456c3.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/txl_tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
