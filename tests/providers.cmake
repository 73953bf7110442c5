# Tests of the Strava and Withings connectors.
