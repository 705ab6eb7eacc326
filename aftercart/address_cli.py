"""`aftercart address check FILE.jsonl|-`: verdicts for addresses, one JSON line in, one out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(help="Shipping address checks (SOP 4's decision, offline).", no_args_is_help=True)


def judge_line(line: str, number: int) -> dict:
    """One output object for one input line; a malformed line gets an error object, never an exception."""
    from domain.address import check_address

    try:
        item = json.loads(line)
    except ValueError as exc:
        return {"line": number, "error": f"not JSON: {exc}"}
    if not isinstance(item, dict):
        return {"line": number, "error": "each line is a JSON object {\"id\", \"address\"}"}
    if not isinstance(item.get("address"), dict):
        return {"id": item.get("id"), "line": number, "error": "\"address\" must be an object of Shopify fields"}
    v = check_address(item["address"])
    out = {"id": item.get("id"), "verdict": v.verdict, "reasons": list(v.reasons), "normalized": v.normalized}
    if v.suggestions:
        out["suggestions"] = v.suggestions
    return out


@app.command()
def check(file: str = typer.Argument(..., help="a JSONL file of {\"id\", \"address\"} lines, or - for stdin")) -> None:
    """Write {"id", "verdict", "reasons", "normalized"} for every input line, in order."""
    if file == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            typer.echo(f"cannot read {file}: {exc}", err=True)
            raise typer.Exit(2)
    out = sys.stdout
    err = Console(stderr=True)
    show = len(lines) >= 1000 and err.is_terminal
    with Progress(TextColumn("checking addresses"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=not show) as progress:
        task = progress.add_task("check", total=len(lines))
        for n, line in enumerate(lines, 1):
            answer = judge_line(line, n) if line.strip() else {"line": n, "error": "empty line"}
            out.write(json.dumps(answer, ensure_ascii=False) + "\n")
            progress.advance(task)
