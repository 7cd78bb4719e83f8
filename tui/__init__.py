"""The Textual terminal UI (`durable tui`); it reads through the store API, like the CLI."""

from __future__ import annotations

__all__: list[str] = []
