# Tests of the Garmin and Fitbit connectors.
# Mapping against documentation fixtures (tests/fixtures/<provider>/), the connector against a
# scripted fake HttpClient, webhook verification; and, when the simulator library exists, the
# connector against its own simulator module through an in-process loopback (no sockets).
foreach(p garmin fitbit)
  if(TARGET syncwell_provider_${p})
    set(_libs syncwell_provider_${p})
    set(_defs SYNCWELL_FIXTURE_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fixtures/${p}")
    if(TARGET syncwell_sim)
      list(APPEND _libs syncwell_sim)
      list(APPEND _defs SYNCWELL_HAVE_SIM=1)
    endif()
    syncwell_add_test(NAME provider_${p}_test SOURCES unit/provider_${p}_test.cpp
                      LIBS ${_libs} LABELS unit)
    target_compile_definitions(provider_${p}_test PRIVATE ${_defs})
  endif()
endforeach()
