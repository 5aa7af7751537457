"""The ``negmine`` command line: one command per file in this package, each calling one library function."""

from __future__ import annotations

import logging
import sys

import typer

app = typer.Typer(
    name="negmine",
    help="Mine hard negatives, filter false negatives, train and evaluate text embedders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level.")) -> None:
    """Mine hard negatives, filter false negatives, train and evaluate text embedders."""
    if verbose:
        logging.getLogger("negmine").setLevel(logging.INFO)


# --- command registration: one line per command module, in pipeline order ---
from negmine.cli.eval import eval_cmd  # noqa: E402
from negmine.cli.index import index_app  # noqa: E402
from negmine.cli.mine import mine  # noqa: E402
from negmine.cli.mteb import mteb_app  # noqa: E402
from negmine.cli.pseudo import pseudo  # noqa: E402
from negmine.cli.relabel import relabel  # noqa: E402
from negmine.cli.score import score  # noqa: E402
from negmine.cli.train import train  # noqa: E402

app.add_typer(index_app, name="index")
app.command("pseudo", help=pseudo.__doc__)(pseudo)
app.command("mine", help=mine.__doc__)(mine)
app.command("score", help=score.__doc__)(score)
app.command("relabel", help=relabel.__doc__)(relabel)
app.command("train", help=train.__doc__)(train)
app.command("eval", help=eval_cmd.__doc__)(eval_cmd)
app.add_typer(mteb_app, name="mteb")
# --- end of command registration ---


def main() -> None:
    """Entry point: turns negmine's own errors into a one-line message and exit code 2."""
    from negmine.errors import NegmineError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except (NegmineError, ImportError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except OSError as err:  # the machine, not the code: a full disk, a read-only or missing folder, no permission
        typer.secho(f"error: {describe_os_error(err)}", fg=typer.colors.RED, err=True)
        sys.exit(2)


def describe_os_error(err: OSError) -> str:
    """``No space left on device (ENOSPC): runs/x/mined.jsonl (not written; ...)``: one line for an ``OSError``."""
    import errno

    what = err.strerror or str(err) or type(err).__name__
    code = f" ({errno.errorcode.get(err.errno, err.errno)})" if err.errno else ""
    where = f": {err.filename}" if err.filename else ""
    notes = "; ".join(getattr(err, "__notes__", ()))
    return f"{what}{code}{where}" + (f" ({notes})" if notes else "")
