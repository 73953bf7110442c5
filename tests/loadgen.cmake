# loadgen S14 plan tests: phases, population, Zipf, request mix, metrics parsing, SLO checks.
syncwell_add_test(NAME loadgen_plan_test SOURCES unit/loadgen_plan_test.cpp LIBS syncwell_loadgen
                  LABELS unit)
