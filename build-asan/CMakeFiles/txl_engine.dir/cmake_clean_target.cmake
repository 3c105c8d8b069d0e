file(REMOVE_RECURSE
  "libtxl_engine.a"
)
