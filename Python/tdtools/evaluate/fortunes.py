"""The quotations of Debian's fortunes package (/usr/share/games/fortunes), written by others:
the real text that the evaluation scripts render and embed."""
import os
import re
import sys

FORTUNES = "/usr/share/games/fortunes"


def quotations(files):
    """Each quotation of the given files with its whitespace collapsed; tables and ASCII art left out."""
    result = []
    for name in files:
        path = os.path.join(FORTUNES, name)
        if not os.path.exists(path):
            sys.exit(f"{path} is missing; install Debian's fortunes package (bash Scripts/setup.sh --data)")
        with open(path, encoding="utf-8", errors="replace") as f:
            for entry in f.read().split("\n%\n"):
                if "\t" in entry or re.search(r"[_|\\/<>{}#]{2,}", entry):
                    continue
                result.append(" ".join(entry.split()))
    return result
