file(REMOVE_RECURSE
  "CMakeFiles/txl.dir/src/cli/cmd_bench.cc.o"
  "CMakeFiles/txl.dir/src/cli/cmd_bench.cc.o.d"
  "CMakeFiles/txl.dir/src/cli/cmd_info.cc.o"
  "CMakeFiles/txl.dir/src/cli/cmd_info.cc.o.d"
  "CMakeFiles/txl.dir/src/cli/main.cc.o"
  "CMakeFiles/txl.dir/src/cli/main.cc.o.d"
  "bin/txl"
  "bin/txl.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/txl.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
