"""The worker's log format and level and its metrics port: read before everything else.

The worker sets its logging up from these first (`app.logs`), so even a
complaint about the other settings (`app.config`) comes out in the chosen
format. Its flags (``--log-level``, ``--metrics-port``) win over the
variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from app.config import ConfigError

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class TelemetrySettings:
    """How the worker logs and where it serves Prometheus metrics.

    Attributes:
        log_format: ``TRANSFER_LOG_FORMAT``: ``text`` (default) for a person
            at a terminal, or ``json``: one object a line.
        log_level: ``TRANSFER_LOG_LEVEL`` (``--log-level``): one of
            `LOG_LEVELS`, ``INFO`` by default.
        metrics_port: ``TRANSFER_METRICS_PORT`` (``--metrics-port``): serve
            metrics on this port; 0 (default) serves none.
    """

    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int = 0

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        log_level: str | None = None,
        metrics_port: int | None = None,
    ) -> TelemetrySettings:
        """Read them; `log_level` and `metrics_port` (the worker's flags) win when given.

        Raises:
            ConfigError: A value the setting does not take, in one line naming it.
        """
        env = os.environ if env is None else env
        if metrics_port is not None:
            port, port_from = str(metrics_port), "--metrics-port"
        else:
            port = env.get("TRANSFER_METRICS_PORT", "").strip() or "0"
            port_from = "TRANSFER_METRICS_PORT"
        if not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"{port_from} must be a port number (1-65535), not {port!r}")
        return cls(
            log_format=_one_of(
                env.get("TRANSFER_LOG_FORMAT") or "text", "TRANSFER_LOG_FORMAT", LOG_FORMATS
            ),
            log_level=_one_of(
                log_level or env.get("TRANSFER_LOG_LEVEL") or "INFO",
                "--log-level" if log_level else "TRANSFER_LOG_LEVEL",
                LOG_LEVELS,
            ),
            metrics_port=int(port),
        )


def _one_of(text: str, source: str, allowed: tuple[str, ...]) -> str:
    """The value of `allowed` that `text` names, in any case."""
    for value in allowed:
        if text.strip().upper() == value.upper():
            return value
    raise ConfigError(f"{source} must be one of {', '.join(allowed)}, not {text!r}")
