"""The report's document model, rendered twice: Markdown (figures linked) and one self-contained HTML page
(figures embedded as base64 PNG), and the number formats every report table uses."""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------------------------- document
@dataclass
class _Doc:
    """A small document model rendered twice: Markdown (figures linked) and HTML (figures embedded)."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("bullets", list(items)))

    def table(self, frame: pd.DataFrame) -> None:
        self.blocks.append(("table", frame))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", (path, caption)))

    def contents(self) -> None:
        """A table of contents here: links to every heading after this point (filled in when rendered)."""
        self.blocks.append(("contents", None))

    def _headings_after(self, start: int) -> list[tuple[int, str]]:
        return [payload for kind, payload in self.blocks[start + 1:] if kind == "heading"]

    # ------------------------------------------------------------------ markdown
    def markdown(self, base: Path) -> str:
        lines = [f"# {self.title}", ""]
        for i, (kind, payload) in enumerate(self.blocks):
            if kind == "contents":
                seen_top = False
                for level, text in self._headings_after(i):
                    seen_top = seen_top or level == 1
                    depth = max(0, level - 2) + (1 if seen_top and level > 1 else 0)
                    lines.append("  " * depth + f"- [{text}](#{_anchor(text)})")
                lines.append("")
            elif kind == "heading":
                level, text = payload
                lines += ["#" * level + " " + text, ""]
            elif kind == "para":
                lines += [payload, ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in payload] + [""]
            elif kind == "table":
                lines += [_md_table(payload), ""]
            elif kind == "figure":
                path, caption = payload
                rel = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.as_posix()
                lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
        return "\n".join(lines).rstrip() + "\n"

    # ------------------------------------------------------------------ html
    def html(self) -> str:
        body = [f"<h1>{_inline_html(self.title)}</h1>"]
        for i, (kind, payload) in enumerate(self.blocks):
            if kind == "contents":
                items = "".join(f'<li class="toc{level}"><a href="#{_anchor(text)}">{_inline_html(text)}</a></li>'
                                for level, text in self._headings_after(i))
                body.append(f'<nav class="contents"><ul>{items}</ul></nav>')
            elif kind == "heading":
                level, text = payload
                body.append(f'<h{level} id="{_anchor(text)}">{_inline_html(text)}</h{level}>')
            elif kind == "para":
                body.append(f"<p>{_inline_html(payload)}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in payload) + "</ul>")
            elif kind == "table":
                body.append(_html_table(payload))
            elif kind == "figure":
                path, caption = payload
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                            f"<figcaption>{_inline_html(caption)}</figcaption></figure>")
        return _HTML_PAGE.format(title=html.escape(self.title), body="\n".join(body))


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }}
h1, h2, h3 {{ line-height: 1.2; }}
h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.88em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
th {{ background: #f2f2f2; }} tr:nth-child(even) td {{ background: #fafafa; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
code {{ background: #f3f3f3; padding: 0 3px; border-radius: 3px; }}
figure {{ margin: 1.2em 0; }} figure img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: 0.9em; color: #555; }}
nav.contents ul {{ columns: 2; list-style: none; padding-left: 0; font-size: 0.92em; }}
nav.contents li.toc1 {{ font-weight: bold; margin-top: .3em; }} nav.contents li.toc3 {{ padding-left: 1.2em; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def _anchor(text: str) -> str:
    """The heading's anchor: lower case, runs of other characters as one hyphen (the same in both renderings)."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _inline_html(text: str) -> str:
    """Escape, then render the two inline markups the report uses: `code` and **bold**."""
    out = html.escape(str(text))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cell_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "*(no rows)*"
    cols = [str(c) for c in frame.columns]
    esc = lambda s: _cell_text(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |",
             "|" + "|".join("---:" if _numeric_column(frame[c]) else "---" for c in frame.columns) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(esc(v) for v in row) + " |")
    return "\n".join(lines)


def _html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><em>(no rows)</em></p>"
    numeric = [_numeric_column(frame[c]) for c in frame.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = "".join(f'<td class="num">{html.escape(_cell_text(v))}</td>' if num
                        else f"<td>{html.escape(_cell_text(v))}</td>" for v, num in zip(row, numeric))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_NUMBER = re.compile(r"^[\s+\-−]?[\d.]+(e[+-]?\d+)?%?$|^$|^\[.*\]$")


def _numeric_column(col: pd.Series) -> bool:
    return all(bool(_NUMBER.match(_cell_text(v))) for v in col)


# ---------------------------------------------------------------------------------------------- formatting
def _pts(x, signed: bool = True) -> str:
    """A fraction as accuracy points, e.g. ``-0.0412`` → ``-4.1``."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _ci(lo, hi) -> str:
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _p(x) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"


def _num(x) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.3g}"


def _pair(s, t) -> str:
    return f"{s} → {t}"


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(str(p) for p in parts)).strip("-")


def _describe_filters(filters: Mapping) -> str:
    parts = []
    if "source" in filters and "target" in filters:
        parts.append(_pair(filters["source"], filters["target"]))
    if "method" in filters:
        parts.append(str(filters["method"]))
    if "budget" in filters:
        parts.append(f"budget {filters['budget']}")
    if "seed" in filters:
        parts.append(f"seed {filters['seed']}")
    return ", ".join(parts)
