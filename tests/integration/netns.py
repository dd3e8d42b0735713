"""Test hosts in network namespaces (zq.testing.netns, re-exported), and the skip a test
takes when this machine cannot make them."""

from __future__ import annotations

from tests.integration.harness import skip_needing_root
from zq.testing.netns import Hosts, Lan, unavailable_reason  # noqa: F401


def skip_unless_available(what: str) -> None:
    """Skip, saying why, when this machine cannot make namespaces."""
    reason = unavailable_reason()
    if reason is not None:
        skip_needing_root(f"{what} need network namespaces: {reason}")
