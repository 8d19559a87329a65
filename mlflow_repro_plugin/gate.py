"""`require_reproducible`: the completeness gate as one call for model-registration scripts.

It lives in the core (`repro_common.registration`), the same for every tracker;
this module keeps the import path registration scripts already use.
"""

from __future__ import annotations

from repro_common.registration import ReproducibilityError, require_reproducible

__all__ = ["ReproducibilityError", "require_reproducible"]
