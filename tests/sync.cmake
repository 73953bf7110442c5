# Tests of src/sync (see tests/CMakeLists.txt for the tiers).
