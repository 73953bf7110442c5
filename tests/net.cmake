# Tests of src/net (see tests/CMakeLists.txt for the tiers).
if(TARGET syncwell_net)
  syncwell_add_test(NAME net_http_client_test SOURCES unit/net_http_client_test.cpp
                    LIBS syncwell_net syncwell_http LABELS unit)
endif()
