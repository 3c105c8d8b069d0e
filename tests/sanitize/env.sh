# Sanitizer runtime options for the ASan + UBSan test build (sourced by
# scripts/test.sh --sanitize; source it yourself to run build-asan binaries by hand).
# Every report fails the process: UBSan halts on the first finding (the build also
# uses -fno-sanitize-recover=undefined), ASan and LeakSanitizer exit non-zero.
_txl_sanitize_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0:check_initialization_order=1:strict_init_order=1:symbolize=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$_txl_sanitize_dir/lsan.supp:print_suppressions=0"
unset _txl_sanitize_dir
