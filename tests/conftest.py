"""Suite-wide settings: a hypothesis profile per place the tests run."""

import os

from hypothesis import HealthCheck, settings

# CI runs more examples than a developer's loop; both are deterministic
# enough to reproduce from the printed seed.
settings.register_profile(
    "ci", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
