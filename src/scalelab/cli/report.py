"""Commands of the report stage: `scalelab report` and `scalelab view`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from scalelab.cli.app import app
from scalelab.cli.options import bounded


@app.command()
def report(
    folders: Annotated[list[Path], typer.Argument(help="result folders: forecast, eval, contamination, align, "
                                                       "redteam, judge calibration (or folders holding them)")],
    out: Annotated[Path, typer.Option(help="folder for report.md, report.html (self-contained), report.pdf")],
    title: Annotated[str, typer.Option(help="the report's title")] = "scalelab technical report",
    pdf: Annotated[bool, typer.Option(help="print report.pdf with headless Chromium when it is installed")] = True,
) -> None:
    """A technical report in the GPT-4 report's shape from result folders, limitations found in the numbers."""
    from scalelab.report.technical_report import build_report

    made = build_report(folders, out, title=title, pdf=pdf)
    print(f"{len(made['limitations'])} limitations found -> {made['html']}" + (f", {made['pdf']}" if made["pdf"] else
                                                                              " (no PDF: Chromium not found)"))


@app.command()
def view(
    folder: Annotated[Path, typer.Argument(help="a report folder (or any result folder with a report.html)")],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1", callback=bounded(0, 65535))] = 8080,
) -> None:
    """Serve a report folder on 127.0.0.1 for a browser (Ctrl-C stops)."""
    from scalelab.report.view import serve_folder

    server = serve_folder(folder, port)
    print(f"serving {folder} on http://127.0.0.1:{server.server_address[1]}/report.html", file=sys.stderr,
          flush=True)
    server.serve_forever()
