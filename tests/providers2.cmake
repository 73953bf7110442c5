# Tests of the Garmin and Fitbit connectors.
