
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/src/cli/cmd_bench.cc" "CMakeFiles/txl.dir/src/cli/cmd_bench.cc.o" "gcc" "CMakeFiles/txl.dir/src/cli/cmd_bench.cc.o.d"
  "/work/main/src/cli/cmd_info.cc" "CMakeFiles/txl.dir/src/cli/cmd_info.cc.o" "gcc" "CMakeFiles/txl.dir/src/cli/cmd_info.cc.o.d"
  "/work/main/src/cli/main.cc" "CMakeFiles/txl.dir/src/cli/main.cc.o" "gcc" "CMakeFiles/txl.dir/src/cli/main.cc.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build-asan/CMakeFiles/txl_engine.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
