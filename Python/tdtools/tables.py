"""Plain-text tables, as the evaluations print them."""


def table(header, rows):
    """The lines of a table: the header, a rule, the rows; columns left-aligned to their widest cell."""
    cells = [[str(c) for c in row] for row in [header] + list(rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [cells[0], ["-" * w for w in widths]] + cells[1:]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]


def print_table(header, rows):
    """Prints `table(header, rows)`."""
    for line in table(header, rows):
        print(line)
