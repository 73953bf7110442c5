# Tests of src/providers (see tests/CMakeLists.txt for the tiers).
