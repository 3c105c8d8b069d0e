# Empty dependencies file for txl_engine.
# This may be replaced when dependencies are built.
