"""report.md: the same sections as index.html, as GitHub-flavoured Markdown with the
figures linked as files next to it (Markdown cannot embed them portably)."""
from __future__ import annotations

from .content import Section

__all__ = ["render_markdown"]


def _cell(text: str) -> str:
    """A table cell: pipes and newlines would break the row; '<' would start HTML."""
    return (str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def _text(text: str) -> str:
    return str(text).replace("<", "&lt;").replace(">", "&gt;")


def render_markdown(sections: list[Section], *, title: str, subtitle: str, footer: str) -> str:
    out = [f"# {_text(title)}", "", _text(subtitle), ""]
    for s in sections:
        out += [f"## {_text(s.title)}", ""]
        for p in s.lead:
            out += [f"**{_text(p)}**", ""]
        for p in s.paragraphs:
            out += [_text(p), ""]
        if s.bullets:
            out += [f"- {_text(b)}" for b in s.bullets] + [""]
        if s.links:
            out += [f"- [{_cell(href)}]({href}): {_text(text)}" for href, text in s.links]
            out.append("")
        for m in s.missing:
            out.append(f"> **Missing:** {_text(m.what)}.")
            if m.how:
                out.append(f"> To get it: `{m.how.replace('`', '')}`")
            out.append("")
        for f in s.figures:
            out += [f"![{_cell(f.caption)}]({f.rel})", "", f"*{_text(f.caption)}*", ""]
        for t in s.tables:
            out += [f"**{_text(t.caption)}**", ""]
            out.append("| " + " | ".join(_cell(c) for c in t.columns) + " |")
            out.append("|" + "---|" * len(t.columns))
            out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
            if t.note:
                out += ["", f"*{_text(t.note)}*"]
            out.append("")
        for n in s.notes:
            out += [f"*{_text(n)}*", ""]
    out += ["---", _text(footer), ""]
    return "\n".join(out)
