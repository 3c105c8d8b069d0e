# Empty dependencies file for txl_tests.
# This may be replaced when dependencies are built.
