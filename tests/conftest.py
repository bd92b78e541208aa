import os

from hypothesis import HealthCheck, settings

# Deterministic in CI (same examples every run, no example database), a little
# wider when run by hand with HYPOTHESIS_PROFILE=dev.
settings.register_profile(
    "ci", derandomize=True, database=None, max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
