"""Small helpers shared by the bulk browser tests."""

from __future__ import annotations

from typing import Any


def record_failures(page: Any) -> list[str]:
    """JavaScript errors and failed requests (but a missing favicon) of ``page``, as they happen."""
    errors: list[str] = []

    def failed(response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            errors.append(f"{response.status} {response.request.method} {response.url}")

    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", failed)
    return errors
