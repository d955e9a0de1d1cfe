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


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL server for the distributed tests (`make test` starts one with
    tools/postgres-for-tests.sh). Skips when NAS_TEST_POSTGRES_URL is unset; when it is set,
    an unreachable server is a failure."""
    url = os.environ.get("NAS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("NAS_TEST_POSTGRES_URL is not set (run the tests through `make test`)")
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT 1"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def rdb_url(request, tmp_path) -> str:
    """Each relational storage the tests cover: an SQLite file in ``tmp_path``, then the
    PostgreSQL server of :func:`postgres_url` (skipped when that skips)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("postgres_url")
