"""A tool module with a mistake of its own: it imports a package that is not installed."""

import handoff_no_such_package  # noqa: F401
