"""Tables on the terminal, readable when piped too.

In a terminal a table is drawn by rich and folds long cells instead of cutting them; when the output
is not a terminal (a pipe, a file, CI logs) the same rows are printed as a Markdown table, whatever
the width, so nothing is truncated and the text can be pasted into a report.
"""

from __future__ import annotations

from rich.table import Table

from tomp_deploy.checks.bench import markdown_table
from tomp_deploy.cli.app import console


def print_table(title: str, columns: tuple[str, ...] | list[str], rows: list[list[str]], *, show_header: bool = True) -> None:
    if not console.is_terminal:
        console.print(f"\n{title}\n\n{markdown_table(columns, rows)}\n", markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=title, show_header=show_header)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_bench(report: dict) -> None:
    from tomp_deploy.checks.bench import TABLE_COLUMNS, table_rows, table_title

    print_table(table_title(report), TABLE_COLUMNS, table_rows(report))
