"""The settings of ``pretroost serve``: where it listens and how much one request may ask."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["ServeConfig", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Address and limits of the page.

    Attributes:
        host: address to listen on; anything but a loopback address exposes the page to the
            network (a warning is logged).
        port: TCP port to listen on.
        max_upload_bytes: largest request body (pasted text or CSV upload), in bytes; at most
            1 MiB, so that uploads stay in memory (Starlette spools larger ones to disk).
        max_rows: most formulas in one request.
        max_formula_chars: longest formula; a longer one gets an error in its row.
        max_concurrent: predictions running at the same time (others wait their turn).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 1_000_000
    max_rows: int = 2000
    max_formula_chars: int = 200
    max_concurrent: int = 2

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_rows", "max_formula_chars", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_upload_bytes > 2**20:
            raise ValueError(
                f"max_upload_bytes must be at most {2**20} (uploads are kept in memory), got "
                f"{self.max_upload_bytes}"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")

    @property
    def upload_limit_text(self) -> str:
        """``max_upload_bytes`` for people: "1 MB", "20 kB"."""
        b = self.max_upload_bytes
        return f"{b / 1e6:g} MB" if b >= 1_000_000 else f"{b / 1e3:g} kB"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)
