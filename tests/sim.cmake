# Tests of src/sim (see tests/CMakeLists.txt for the tiers).
