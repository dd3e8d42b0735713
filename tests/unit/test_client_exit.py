"""ClientConfig.exit_timeout: $ZQ_EXIT_TIMEOUT read in one place, checked with a clear error."""

from __future__ import annotations

import pytest

from zq.config import DEFAULT_EXIT_TIMEOUT, ClientConfig
from zq.errors import ConfigError


def test_exit_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZQ_EXIT_TIMEOUT", raising=False)
    assert ClientConfig().exit_timeout == DEFAULT_EXIT_TIMEOUT
    monkeypatch.setenv("ZQ_EXIT_TIMEOUT", "2.5")
    assert ClientConfig().exit_timeout == 2.5
    assert ClientConfig(exit_timeout=0).validate().exit_timeout == 0  # given wins


@pytest.mark.parametrize("text, message", [
    ("soon", "ZQ_EXIT_TIMEOUT='soon' is not a number of seconds"),
    ("-1", "exit_timeout (ZQ_EXIT_TIMEOUT) must be >= 0"),
])
def test_a_bad_exit_timeout_is_a_config_error(monkeypatch: pytest.MonkeyPatch, text: str,
                                              message: str) -> None:
    monkeypatch.setenv("ZQ_EXIT_TIMEOUT", text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ClientConfig().validate()
