# Empty compiler generated dependencies file for txl.
# This may be replaced when dependencies are built.
