"""Property-based tests (hypothesis): whatever comes in, nothing crashes and every refusal names the field.

Bounded so the whole suite stays well under CI's 15 minutes: ``FUZZ`` runs each property on
``TASKBOT_FUZZ_EXAMPLES`` inputs (default 60; raise it for a deeper run), with no deadline (the
machine is shared) and no example database left in the repository.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ = settings(max_examples=int(os.environ.get("TASKBOT_FUZZ_EXAMPLES", "60")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
