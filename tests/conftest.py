"""Make the repository root importable when zq is not installed in the environment."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.pg import database, pg_server  # noqa: E402,F401  (the session's PostgreSQL server, a database per test)
