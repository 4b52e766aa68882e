"""A comparison -> messages and an exit code, in four formats (text, markdown, json,
GitHub annotations).

Input is the dict `compare.compare_sides` returns. Rules (`verdicts`):
* exit 1 when any benchmark is "slower" (significant, CI above 1, beyond the
  threshold) or "failed" (ran in the baseline, error/OOM in the contender);
* exit 0 otherwise ("faster", "unchanged", "inconclusive", "missing", tracked
  values that "changed" are reported but never fail);
* mixed environments (only reachable with --allow-mixed) are announced first and
  last in every format, and in the JSON as `"mixed": true`.

The text format is a `rich` table rendered without colour or markup (plain, greppable:
CI looks for "REGRESSION" / "no regression"); `render(..., color=True)` colours the
verdicts for a terminal. rich is imported only when a text table is rendered.
"""
from __future__ import annotations

import json
import math

from .verdicts import IMPROVEMENT_VERDICTS, REGRESSION_VERDICTS, is_regression

__all__ = ["FORMATS", "exit_code", "render"]

FORMATS = ("text", "markdown", "json", "github")

_ORDER = {"failed": 0, "slower": 1, "faster": 2, "fixed": 3, "changed": 4, "inconclusive": 5,
          "missing": 6, "unchanged": 7, "skipped": 8}


#: Exit code when A and B share no benchmark: a CI gate must not pass on "no regression"
#: when the new run measured nothing that the baseline did.
NOTHING_IN_COMMON = 3


def nothing_in_common(result: dict) -> bool:
    return not any(r["verdict"] != "missing" for r in result["rows"])


def exit_code(result: dict) -> int:
    """1 when any benchmark regressed (`verdicts.is_regression`), 3 when the two sides
    have no benchmark in common, else 0."""
    if any(is_regression(r) for r in result["rows"]):
        return 1
    return NOTHING_IN_COMMON if nothing_in_common(result) else 0


def _outcome_line(result: dict) -> str:
    code = exit_code(result)
    if code == NOTHING_IN_COMMON:
        return ("NOTHING IN COMMON: the baseline and the contender share no benchmark, "
                "so nothing was compared")
    return "REGRESSION" if code else "no regression"


def _fmt_value(v, unit: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if unit in ("ms", "seconds"):
        ms = v * 1e3 if unit == "seconds" else v
        if ms >= 1000:
            return f"{ms / 1e3:.3f} s"
        if ms >= 1:
            return f"{ms:.3f} ms"
        return f"{ms * 1e3:.1f} us"
    if unit == "instructions":  # exact: the rule acts on fractions of a percent
        return f"{v:,.0f} {unit}"
    if abs(v) >= 1e6:
        return f"{v:.4g} {unit}"
    return f"{v:g} {unit}"


def _count_rule(result: dict) -> str | None:
    """The exact-count rule, when the comparison holds instruction counts."""
    if not any(r.get("unit") == "instructions" for r in result["rows"]):
        return None
    t = result.get("count_threshold", 0.01)
    return f"instruction counts: ratio beyond {1 + t:.3f}x / {1 / (1 + t):.3f}x (no test)"


def _fmt_ratio(r) -> str:
    return "-" if r is None else f"{r:.3f}x"


def _fmt_ci(row) -> str:
    if row["ci_low"] is None or row["ci_high"] is None:
        return "-"
    return f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _fmt_p(p) -> str:
    if p is None:
        return "-"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def _summary(result: dict) -> str:
    c = result["counts"]
    parts = [f"{c[k]} {k}" for k in sorted(c, key=lambda k: _ORDER.get(k, 99))]
    return ", ".join(parts)


def _mixed_line(result: dict) -> str:
    return ("MIXED ENVIRONMENTS: these results come from different machines or software; "
            "ratios mix hardware/software differences with code changes ("
            + "; ".join(result["mixed_reasons"]) + ")")


def _sorted_rows(result: dict) -> list[dict]:
    return sorted(result["rows"], key=lambda r: (_ORDER.get(r["verdict"], 99), r["key"]))


def _header(result: dict) -> list[str]:
    t = result["threshold"]
    return [
        f"baseline : {result['baseline']['label']}",
        f"contender: {result['contender']['label']}",
        f"measured : {result.get('measurement', '?')}"
        + (" (on a shared machine, prefer `compare --interleave`)"
           if result.get("measurement") == "separate runs" else ""),
        f"rule     : slower/faster = Mann-Whitney p < {result['alpha']:g}, 95% CI of the "
        f"median ratio clear of 1, and ratio beyond {1 + t:.3f}x / {1 / (1 + t):.3f}x",
    ] + ([f"           {_count_rule(result)}"] if _count_rule(result) else [])


def _quiet(row: dict) -> bool:
    """Rows the text report leaves out: skipped points, unchanged tracked values (an
    unchanged instruction count stays: its ratio shows how close to the rule it came)."""
    return row["verdict"] == "skipped" or (
        row["verdict"] == "unchanged" and row["unit"] not in ("ms", "seconds", "instructions"))


def _table_text(table_rows: list[tuple], color: bool) -> list[str]:
    """The comparison table through rich: first column left, numbers right, verdict left."""
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    head, *body = table_rows
    # one rule, under the header row, in ASCII (CI logs, any terminal)
    rule = box.Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)
    table = Table(box=rule, show_edge=False, pad_edge=False, padding=(0, 1),
                  header_style="bold" if color else "")
    for i, name in enumerate(head):
        table.add_column(name, justify="left" if i in (0, len(head) - 1) else "right",
                         no_wrap=True)
    styles = {v: "red" for v in REGRESSION_VERDICTS} | {v: "green" for v in IMPROVEMENT_VERDICTS}
    for row in body:
        verdict = Text(row[-1], style=styles.get(row[-1].split(" ")[0], "") if color else "")
        table.add_row(*(Text(c) for c in row[:-1]), verdict)
    # never wrap or truncate: each cell's text, padding and a divider per column
    width = sum(max(len(r[i]) for r in table_rows) + 3 for i in range(len(head))) + 8
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=not color, highlight=False,
                      markup=False, emoji=False, force_terminal=color,
                      color_system="standard" if color else None)
    console.print(table)
    return [line.rstrip() for line in out.getvalue().splitlines()]


def render_text(result: dict, *, color: bool = False) -> str:
    lines = []
    if result["mixed"]:
        lines += ["!" * 78, "!! " + _mixed_line(result), "!" * 78]
    lines += _header(result)
    hidden = [r for r in result["rows"] if _quiet(r)]
    rows = [r for r in _sorted_rows(result) if not _quiet(r)]
    table = [("benchmark", "baseline", "contender", "ratio", "95% CI", "p", "verdict")]
    for r in rows:
        table.append((r["key"], _fmt_value(r["baseline"], r["unit"]),
                      _fmt_value(r["contender"], r["unit"]), _fmt_ratio(r["ratio"]),
                      _fmt_ci(r), _fmt_p(r["p_value"]),
                      r["verdict"] + (f" ({r['note']})" if r["note"] and r["verdict"] in
                                      ("failed", "fixed", "missing") else "")))
    lines.append("")
    lines += _table_text(table, color)
    lines += ["", f"summary: {_summary(result)}" + (
        f" ({len(hidden)} skipped points and unchanged tracked values not shown)"
        if hidden else "")]
    lines.append(_outcome_line(result))
    if result["mixed"]:
        lines.append("!! " + _mixed_line(result))
    return "\n".join(lines) + "\n"


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|")


def _md_table(rows: list[dict]) -> list[str]:
    out = ["| benchmark | baseline | contender | ratio | 95% CI | p | verdict |",
           "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        v = r["verdict"]
        mark = {"slower": ":red_circle: ", "failed": ":x: ", "faster": ":green_circle: "}.get(v, "")
        note = f" ({_md_escape(r['note'])})" if r["note"] and v in ("failed", "fixed",
                                                                    "missing") else ""
        out.append(f"| `{_md_escape(r['key'])}` | {_fmt_value(r['baseline'], r['unit'])} | "
                   f"{_fmt_value(r['contender'], r['unit'])} | {_fmt_ratio(r['ratio'])} | "
                   f"{_fmt_ci(r)} | {_fmt_p(r['p_value'])} | {mark}{v}{note} |")
    return out


def render_markdown(result: dict) -> str:
    code = exit_code(result)
    title = {0: "no performance regression", 1: ":warning: performance regression"}.get(
        code, ":warning: nothing in common: no benchmark was compared")
    lines = []
    if result["mixed"]:
        lines += [f"> [!WARNING]\n> **{_md_escape(_mixed_line(result))}**", ""]
    lines += [f"### parabench compare: {title}", ""]
    lines += [f"- baseline: `{result['baseline']['label']}`",
              f"- contender: `{result['contender']['label']}`",
              f"- measured: {result.get('measurement', '?')}",
              f"- {_summary(result)}",
              f"- rule: Mann-Whitney p < {result['alpha']:g}, 95% bootstrap CI of the median "
              f"ratio clear of 1, and at least {result['threshold']:.0%} change"
              + (f"; {_count_rule(result)}" if _count_rule(result) else ""), ""]
    rows = _sorted_rows(result)
    notable = [r for r in rows if r["verdict"] in ("failed", "slower", "faster", "fixed")]
    if notable:
        lines += _md_table(notable) + [""]
    rest = [r for r in rows if r not in notable and r["verdict"] != "skipped"]
    if rest:
        lines += ["<details><summary>all other benchmarks "
                  f"({len(rest)})</summary>", ""] + _md_table(rest) + ["", "</details>", ""]
    if result["mixed"]:
        lines += ["> [!WARNING]", f"> {_md_escape(_mixed_line(result))}", ""]
    return "\n".join(lines)


def _gh_escape_data(s: str) -> str:
    return str(s).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_escape_prop(s: str) -> str:
    return _gh_escape_data(s).replace(":", "%3A").replace(",", "%2C")


def _gh(level: str, title: str, message: str) -> str:
    return f"::{level} title={_gh_escape_prop(title)}::{_gh_escape_data(message)}"


def render_github(result: dict) -> str:
    """GitHub Actions workflow commands: one annotation per regression/improvement."""
    lines = []
    if result["mixed"]:
        lines.append(_gh("warning", "parabench: mixed environments", _mixed_line(result)))
    if nothing_in_common(result):
        lines.append(_gh("warning", "parabench: nothing in common", _outcome_line(result)))
    for r in _sorted_rows(result):
        v = r["verdict"]
        if v not in ("slower", "failed", "faster"):
            continue
        what = (f"{_fmt_value(r['baseline'], r['unit'])} -> {_fmt_value(r['contender'], r['unit'])}"
                f" ({_fmt_ratio(r['ratio'])}, 95% CI {_fmt_ci(r)}, p {_fmt_p(r['p_value'])})")
        if v == "slower":
            lines.append(_gh("warning", f"Performance regression: {r['key']}", what))
        elif v == "failed":
            lines.append(_gh("warning", f"Benchmark failed: {r['key']}", r["note"] or "failed"))
        else:
            lines.append(_gh("notice", f"Faster: {r['key']}", what))
    lines.append(f"parabench compare {result['baseline']['label']} -> "
                 f"{result['contender']['label']}: {_summary(result)}"
                 + (" [MIXED ENVIRONMENTS]" if result["mixed"] else ""))
    return "\n".join(lines) + "\n"


def render_json(result: dict) -> str:
    return json.dumps(result, indent=2, allow_nan=False, default=str) + "\n"


def render(result: dict, fmt: str = "text", *, color: bool = False) -> str:
    """The comparison in one of FORMATS; `color` (text only) styles verdicts for a
    terminal."""
    if fmt == "text":
        return render_text(result, color=color)
    try:
        return {"markdown": render_markdown, "json": render_json,
                "github": render_github}[fmt](result)
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}") from None
