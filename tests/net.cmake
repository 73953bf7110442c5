# Tests of src/net (see tests/CMakeLists.txt for the tiers).
