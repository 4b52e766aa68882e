"""The last section: every file written next to index.html."""
from __future__ import annotations

from ..content import Section
from .context import Context

__all__ = ["files_section"]


def files_section(ctx: Context, written: list[tuple[str, str]]) -> Section:
    """`written`: (relative path, description) of every file next to index.html."""
    s = Section("files", "Files")
    s.paragraphs.append("Written next to this page (figures are embedded in it as well):")
    s.links.extend(written)
    return s
