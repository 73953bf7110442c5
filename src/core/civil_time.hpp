#pragma once
// Proleptic Gregorian calendar <-> days since 1970-01-01 (Howard Hinnant's public-domain
// algorithms, http://howardhinnant.github.io/date_algorithms.html). Shared by every wire format
// that carries dates (providers, the API, job date ranges) so there is one copy to trust.
#include <cstdint>

namespace syncwell {

// Days since 1970-01-01 of y-m-d (m 1..12, d 1..31; no range check).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d);
// The civil date of a day number.
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d);

}  // namespace syncwell
