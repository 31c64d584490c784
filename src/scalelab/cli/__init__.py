"""The `scalelab` command: a thin layer over the library, one module per stage.

Bad input, usage errors included, ends with one line on stderr and exit 2, before any output
is touched; 3 means a result that cannot be trusted (an untrusted fit, a diverged run).
"""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from scalelab.cli.app import app
from scalelab.errors import UserError
from scalelab.provenance import set_command

# each attaches its commands; --help lists them in pipeline order
for _stage in ("scaling", "evals", "align", "redteam", "report"):
    importlib.import_module(f"scalelab.cli.{_stage}")


def main() -> None:
    # deprecation notices from the libraries underneath are for their callers' code, not for users
    warnings.filterwarnings("ignore", category=FutureWarning)
    set_command(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except UserError as e:
        _one_line(str(e))
    except typer.TyperException as e:  # a usage error: unknown option, bad value, missing argument
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        command = getattr(getattr(e, "ctx", None), "command_path", "scalelab").removeprefix("scalelab").strip()
        _one_line(f"{command}: {message}" if command else message)
    except (KeyboardInterrupt, typer.Abort):
        print("scalelab: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def _one_line(message: str) -> None:
    print(f"scalelab: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)
