
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/src/autograd/tape.cc" "CMakeFiles/txl_engine.dir/src/autograd/tape.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/autograd/tape.cc.o.d"
  "/work/main/src/backend/backend_for.cc" "CMakeFiles/txl_engine.dir/src/backend/backend_for.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/backend/backend_for.cc.o.d"
  "/work/main/src/backend/cpu/elementwise.cc" "CMakeFiles/txl_engine.dir/src/backend/cpu/elementwise.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/backend/cpu/elementwise.cc.o.d"
  "/work/main/src/backend/cpu/loss_index.cc" "CMakeFiles/txl_engine.dir/src/backend/cpu/loss_index.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/backend/cpu/loss_index.cc.o.d"
  "/work/main/src/backend/cpu/matmul.cc" "CMakeFiles/txl_engine.dir/src/backend/cpu/matmul.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/backend/cpu/matmul.cc.o.d"
  "/work/main/src/backend/cpu/reduce.cc" "CMakeFiles/txl_engine.dir/src/backend/cpu/reduce.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/backend/cpu/reduce.cc.o.d"
  "/work/main/src/backend/cpu/softmax_norm.cc" "CMakeFiles/txl_engine.dir/src/backend/cpu/softmax_norm.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/backend/cpu/softmax_norm.cc.o.d"
  "/work/main/src/backend/op_names.cc" "CMakeFiles/txl_engine.dir/src/backend/op_names.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/backend/op_names.cc.o.d"
  "/work/main/src/bench/ops_bench.cc" "CMakeFiles/txl_engine.dir/src/bench/ops_bench.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/bench/ops_bench.cc.o.d"
  "/work/main/src/core/allocator.cc" "CMakeFiles/txl_engine.dir/src/core/allocator.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/core/allocator.cc.o.d"
  "/work/main/src/core/dtype.cc" "CMakeFiles/txl_engine.dir/src/core/dtype.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/core/dtype.cc.o.d"
  "/work/main/src/core/error.cc" "CMakeFiles/txl_engine.dir/src/core/error.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/core/error.cc.o.d"
  "/work/main/src/core/shape.cc" "CMakeFiles/txl_engine.dir/src/core/shape.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/core/shape.cc.o.d"
  "/work/main/src/core/storage.cc" "CMakeFiles/txl_engine.dir/src/core/storage.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/core/storage.cc.o.d"
  "/work/main/src/core/tensor.cc" "CMakeFiles/txl_engine.dir/src/core/tensor.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/core/tensor.cc.o.d"
  "/work/main/src/core/threads.cc" "CMakeFiles/txl_engine.dir/src/core/threads.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/core/threads.cc.o.d"
  "/work/main/src/ops/elementwise.cc" "CMakeFiles/txl_engine.dir/src/ops/elementwise.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/ops/elementwise.cc.o.d"
  "/work/main/src/ops/index.cc" "CMakeFiles/txl_engine.dir/src/ops/index.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/ops/index.cc.o.d"
  "/work/main/src/ops/matmul.cc" "CMakeFiles/txl_engine.dir/src/ops/matmul.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/ops/matmul.cc.o.d"
  "/work/main/src/ops/nn_ops.cc" "CMakeFiles/txl_engine.dir/src/ops/nn_ops.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/ops/nn_ops.cc.o.d"
  "/work/main/src/ops/reduce.cc" "CMakeFiles/txl_engine.dir/src/ops/reduce.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/ops/reduce.cc.o.d"
  "/work/main/src/ops/view.cc" "CMakeFiles/txl_engine.dir/src/ops/view.cc.o" "gcc" "CMakeFiles/txl_engine.dir/src/ops/view.cc.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
