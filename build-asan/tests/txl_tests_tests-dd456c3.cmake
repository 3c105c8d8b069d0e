set( txl_tests_TESTS)
