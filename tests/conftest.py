import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def arm_data() -> Path:
    """The shared ARM latency data. Skips when NAS_ARM_DATA is unset; when it is set, a
    missing folder is a failure (CI sets it, so the data must be there)."""
    value = os.environ.get("NAS_ARM_DATA")
    if not value:
        pytest.skip("NAS_ARM_DATA is not set")
    path = Path(value)
    assert path.is_dir(), f"NAS_ARM_DATA={value} is not a folder"
    return path
