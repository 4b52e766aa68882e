"""index.html: one self-contained page. Figures are embedded as base64 data URIs and the
stylesheet is inline, so the file opens from disk with no network. jinja2 autoescaping
is on for the whole template: every string from the database (family names, reasons,
commands, environment values) is escaped; nothing is marked safe.
"""
from __future__ import annotations

import base64
from pathlib import Path

from ..regress.verdicts import IMPROVEMENT_VERDICTS, REGRESSION_VERDICTS
from .content import Section

__all__ = ["render_html"]

NAV_LABELS = {
    "verdict": "Verdict", "environment": "Environment", "latency": "Latency",
    "ratio": "Para-Former / serial", "throughput": "Throughput", "efficiency": "Efficiency",
    "energy": "Energy", "memory": "Memory", "profile": "Profiler", "history": "History",
    "comparison": "Last compare", "not-measured": "Not measured", "files": "Files",
}
#: The report's own depth-scaling verdicts (`analysis`): how latency grows with depth.
DEPTH_VERDICT_CLASSES = {"flat": "v-flat", "sub-linear": "v-sub", "linear": "v-lin",
                         "inconclusive": "v-inc"}
#: Cell class per verdict word: depth scaling, then compare's regressions and
#: improvements from the one rule in `regress.verdicts`.
VERDICT_CLASSES = {**DEPTH_VERDICT_CLASSES,
                   **dict.fromkeys(REGRESSION_VERDICTS, "bad"),
                   **dict.fromkeys(IMPROVEMENT_VERDICTS, "good")}


def _cell_class(cell: str) -> str:
    """CSS class of a table cell: verdict words; ratios written as '0.76×' (below 1 is
    good: the parallel model or the contender takes less time); long text may wrap."""
    if cell in VERDICT_CLASSES:
        return VERDICT_CLASSES[cell]
    if len(cell) > 40:
        return "wrap"
    if cell.endswith("×"):
        try:
            v = float(cell[:-1])
        except ValueError:
            return ""
        return "good" if v < 0.95 else "bad" if v > 1.05 else ""
    return ""


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
:root { --fg:#1d2330; --muted:#5b6474; --line:#d9dee7; --bg:#f6f7fa; --accent:#2456a6; }
* { box-sizing:border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#1d2330; color:#fff; padding:18px 28px; }
header h1 { margin:0 0 4px; font-size:22px; }
header p { margin:0; color:#c7cedb; font-size:13px; }
nav { padding:10px 28px; background:#fff; border-bottom:1px solid var(--line);
      position:sticky; top:0; z-index:2; font-size:13px; }
nav a { color:var(--accent); margin-right:14px; text-decoration:none; white-space:nowrap; }
nav a.nodata { color:var(--muted); }
main { max-width:1280px; margin:0 auto; padding:8px 28px 40px; }
section { background:#fff; border:1px solid var(--line); border-radius:6px;
          padding:6px 22px 16px; margin:18px 0; }
h2 { font-size:18px; margin:14px 0 8px; }
ul { padding-left:22px; } li { margin:3px 0; }
figure { margin:14px 0; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); }
figcaption { color:var(--muted); font-size:13px; }
.tablewrap { overflow-x:auto; margin:10px 0; }
table { border-collapse:collapse; font-size:13px; }
caption { text-align:left; font-weight:600; padding:4px 0; }
th, td { border-bottom:1px solid var(--line); padding:3px 10px; text-align:left;
         vertical-align:top; }
th { background:#eef1f6; position:sticky; top:0; }
td { font-variant-numeric:tabular-nums; white-space:nowrap; }
td.wrap { white-space:normal; max-width:46em; overflow-wrap:break-word; min-width:16em; }
.note { color:var(--muted); font-size:12px; }
.missing { background:#fff8e6; border-left:4px solid #e0a800; padding:8px 12px;
           margin:10px 0; }
.missing code { display:block; margin-top:4px; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px;
       background:#eef1f6; padding:1px 5px; border-radius:3px; }
.v-flat { color:#0a7a3d; font-weight:600; } .v-sub { color:#b86e00; font-weight:600; }
.v-lin { color:#b3261e; font-weight:600; } .v-inc { color:#5b6474; font-style:italic; }
.good { color:#0a7a3d; } .bad { color:#b3261e; }
.lead { background:#eef4ff; border-left:4px solid var(--accent); padding:4px 14px;
        margin:8px 0 12px; font-size:16px; }
.lead p { margin:6px 0; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:18px; }
</style>
</head>
<body>
<header>
<h1>{{ title }}</h1>
<p>{{ subtitle }}</p>
</header>
<nav>{% for s in sections %}
<a href="#{{ s.id }}"{% if s.empty %} class="nodata" title="no data"{% endif %}>
{{- nav_labels.get(s.id, s.title) }}</a>{% endfor %}
</nav>
<main>
{% for s in sections %}
<section id="{{ s.id }}">
<h2>{{ s.title }}</h2>
{% if s.lead %}<div class="lead">{% for p in s.lead %}<p>{{ p }}</p>{% endfor %}</div>{% endif %}
{% for p in s.paragraphs %}<p>{{ p }}</p>
{% endfor %}
{% if s.bullets %}<ul>{% for b in s.bullets %}<li>{{ b }}</li>{% endfor %}</ul>{% endif %}
{% if s.links %}<ul>{% for href, text in s.links %}
<li><a href="{{ href }}">{{ href }}</a> <span class="note">{{ text }}</span></li>
{%- endfor %}</ul>{% endif %}
{% for m in s.missing %}<div class="missing"><strong>Missing:</strong> {{ m.what }}.
{% if m.how %}To get it: <code>{{ m.how }}</code>{% endif %}</div>
{% endfor %}
{% for f in s.figures %}<figure>
<img src="{{ images[f.rel] }}" alt="{{ f.caption }}">
<figcaption>{{ f.caption }} <span class="note">({{ f.rel }})</span></figcaption>
</figure>
{% endfor %}
{% for t in s.tables %}<div class="tablewrap"><table>
<caption>{{ t.caption }}</caption>
<thead><tr>{% for c in t.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr>{% for cell in row %}{% set c = cell_class(cell) %}
<td{% if c %} class="{{ c }}"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>{% if t.note %}<p class="note">{{ t.note }}</p>{% endif %}</div>
{% endfor %}
{% for n in s.notes %}<p class="note">{{ n }}</p>
{% endfor %}
</section>
{% endfor %}
</main>
<footer>{{ footer }}</footer>
</body>
</html>
"""


def _data_uri(path: Path) -> str:
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(sections: list[Section], *, title: str, subtitle: str, footer: str) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    images = {f.rel: _data_uri(f.path) for s in sections for f in s.figures}
    return env.from_string(_TEMPLATE).render(
        sections=sections, title=title, subtitle=subtitle, footer=footer, images=images,
        cell_class=_cell_class, nav_labels=NAV_LABELS)
