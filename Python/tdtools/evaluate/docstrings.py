"""Sentences of the Python standard library's docstrings, written by others: technical prose about
files, sockets, dates and parsers, another domain than the quotations of Debian's fortunes. The
MiniLM job calibrates on quotations and evaluates on these.

The source files of the modules in MODULES are read from the running interpreter's standard
library (`sysconfig.get_paths()["stdlib"]`; parsed with `ast`, nothing imported), in that order.
From each, the docstrings of the module and of its public classes, functions and methods (names
without a leading underscore, in source order) are cut into paragraphs at blank lines;
paragraphs holding code (`>>>`, an indented line, reST directives or roles, a `::` block) are
left out, the rest cut into sentences after `.`, `?` or `!` followed by a capital letter. A
sentence is kept when it has 20–300 characters, starts with a capital letter, ends with a full
stop, has at least four words and no code characters (`_ = ( ) [ ] { } < > | * \\ \"`) and has
not been seen before. The order and the selection depend only on the Python version's sources.
"""
import ast
import os
import re
import sys
import sysconfig

MODULES = ["argparse", "calendar", "collections/__init__", "configparser", "contextlib", "csv", "datetime", "difflib",
           "email/message", "fractions", "ftplib", "functools", "gettext", "glob", "gzip", "heapq", "http/client", "http/cookiejar",
           "imaplib", "inspect", "ipaddress", "logging/__init__", "mailbox", "netrc", "optparse", "pathlib", "pickle", "poplib",
           "random", "sched", "shlex", "shutil", "smtplib", "socket", "socketserver", "statistics", "string", "subprocess",
           "tarfile", "tempfile", "textwrap", "threading", "timeit", "urllib/parse", "urllib/request", "uuid", "warnings",
           "wave", "zipfile"]
CODE = re.compile(r"[_=()\[\]{}<>|*\\\"]")
SPLIT = re.compile(r"(?<=[.?!])\s+(?=[A-Z])")


def docstrings(tree):
    """The docstrings of a module and of its public classes, functions and methods, in source order."""
    found = []
    if (d := ast.get_docstring(tree, clean=True)):
        found.append(d)

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and not child.name.startswith("_"):
                if (d := ast.get_docstring(child, clean=True)):
                    found.append(d)
                if isinstance(child, ast.ClassDef):
                    visit(child)
    visit(tree)
    return found


def paragraphs(text):
    """The paragraphs of a docstring that hold prose only, whitespace collapsed."""
    for block in re.split(r"\n\s*\n", text):
        lines = block.split("\n")
        if ">>>" in block or "::" in block or re.search(r":\w+:|\.\. \w", block) or any(l.startswith((" ", "\t")) for l in lines):
            continue
        yield " ".join(block.split())


def sentences(limit=None):
    """The kept sentences, in order (the first `limit` of them when given)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    result, seen = [], set()
    for module in MODULES:
        path = os.path.join(stdlib, module + ".py")
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: the Python standard library's sources are the evaluation text")
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        for doc in docstrings(tree):
            for paragraph in paragraphs(doc):
                for s in SPLIT.split(paragraph):
                    if (20 <= len(s) <= 300 and s[0].isupper() and s.endswith(".") and len(s.split()) >= 4
                            and not CODE.search(s) and s not in seen):
                        seen.add(s)
                        result.append(s)
                        if limit is not None and len(result) == limit:
                            return result
    return result


if __name__ == "__main__":
    texts = sentences()
    print(f"{len(texts)} sentences from the docstrings of {len(MODULES)} modules of Python {sys.version.split()[0]}; the first five:")
    for t in texts[:5]:
        print("  " + t)
