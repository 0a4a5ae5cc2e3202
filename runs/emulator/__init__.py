"""A local emulator of the Gemini Interactions API, for tests and offline runs.

``EmulatorServer`` serves the API's HTTP wire protocol so the real
``google-genai`` SDK can talk to it; ``scenarios`` decides what each request
gets back; ``store`` keeps the interactions (in memory, or in a SQLite file
that survives restarts). Standard library only: importing this package needs
neither Django nor the SDK.
"""

from .server import EmulatorServer
from .store import StoreInUse

__all__ = ["EmulatorServer", "StoreInUse"]
