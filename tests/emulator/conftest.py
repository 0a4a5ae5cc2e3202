"""Fixtures of the emulator's own tests: a fresh emulator per test and SDK clients talking to
it. No Django and no database."""

import pytest
from google import genai
from google.genai import types

from runs.emulator import EmulatorServer


@pytest.fixture
def emulator(monkeypatch):
    # The SDK honours proxies and an API-version override from the environment;
    # neither may leak into a test talking to 127.0.0.1.
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "GOOGLE_GENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    server = EmulatorServer(host="127.0.0.1", port=0, background_polls=3).start()
    yield server
    server.stop()


def make_client(url, **http_options):
    options = {"retry_options": types.HttpRetryOptions(attempts=1), "timeout": 10_000}
    options.update(http_options)
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=url, **options))


@pytest.fixture
def client(emulator):
    return make_client(emulator.url)
