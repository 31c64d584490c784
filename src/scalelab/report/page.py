"""One page template for every report: Markdown rendered by markdown-it-py inside a Jinja2 template,
figures inlined as data URLs so the page is one self-contained file."""

from __future__ import annotations

import base64
from pathlib import Path

from jinja2 import Template
from markdown_it import MarkdownIt
from markupsafe import Markup

from scalelab.io import write_atomic

PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em;line-height:1.4}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.25em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%}</style></head>
<body>{{ body }}</body></html>
""", autoescape=True)
MIME = {".png": "image/png", ".svg": "image/svg+xml"}


def render_page(md: str, folder: Path, title: str) -> str:
    """Markdown as a self-contained HTML page; image paths are read relative to `folder`."""
    renderer = MarkdownIt("commonmark").enable("table")
    tokens = renderer.parse(md)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                path = folder / str(child.attrGet("src"))
                data = base64.b64encode(path.read_bytes()).decode()
                child.attrSet("src", f"data:{MIME.get(path.suffix, 'image/png')};base64,{data}")
    return PAGE.render(title=title, body=Markup(renderer.renderer.render(tokens, renderer.options, {})))


def write_page(md: str, folder: Path, title: str) -> None:
    """report.md and report.html in `folder`."""
    write_atomic(folder / "report.md", lambda tmp: tmp.write_text(md))
    page = render_page(md, folder, title)
    write_atomic(folder / "report.html", lambda tmp: tmp.write_text(page))
