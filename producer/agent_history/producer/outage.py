"""Logs a failing part once when it starts failing and once when it works again, however many
times it fails in between: an outage is one warning, not one per attempt or per event."""

from __future__ import annotations

import logging


class Outage:
    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log, self._what = log, what
        self.active = False
        self.failures = 0  # in the current outage

    def failed(self, reason: object) -> None:
        self.failures += 1
        if not self.active:
            self.active = True
            self._log.warning("%s: %s", self._what, reason)

    def recovered(self) -> None:
        if self.active:
            self._log.warning("%s: over, after %d failures", self._what, self.failures)
        self.active, self.failures = False, 0
