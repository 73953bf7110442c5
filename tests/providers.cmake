# Tests of the Strava and Withings connectors.
if(TARGET syncwell_provider_strava)
  syncwell_add_test(NAME provider_strava_test SOURCES unit/provider_strava_test.cpp
                    LIBS syncwell_provider_strava LABELS unit)
  target_compile_definitions(provider_strava_test PRIVATE
                             SW_FIXTURE_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fixtures")
endif()
if(TARGET syncwell_provider_withings)
  syncwell_add_test(NAME provider_withings_test SOURCES unit/provider_withings_test.cpp
                    LIBS syncwell_provider_withings LABELS unit)
  target_compile_definitions(provider_withings_test PRIVATE
                             SW_FIXTURE_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fixtures")
endif()
# Both connectors against their simulator modules through a real SimServer on loopback.
if(TARGET syncwell_sim AND TARGET syncwell_provider_strava AND TARGET syncwell_provider_withings)
  syncwell_add_test(NAME provider_strava_withings_sim_test
                    SOURCES unit/provider_strava_withings_sim_test.cpp
                    LIBS syncwell_sim syncwell_provider_strava syncwell_provider_withings
                    LABELS unit)
endif()
