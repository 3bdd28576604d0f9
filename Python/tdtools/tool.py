"""The `tensor-compress` command line, as the scripts call it."""
import json
import subprocess


class ToolError(RuntimeError):
    """A `tensor-compress` run that failed, with its error output."""


def compressible_nodes(tool, model, shapes=()):
    """The compressible nodes of `model` as `tensor-compress inspect --json` lists them (dicts with
    name, op, kernel, stride, padding, dilation, groups, …), at the input shapes `shapes`
    (`NAME=d0,d1,…` strings)."""
    listed = subprocess.run([tool, "inspect", model, "--json", "--no-vbmf"] + [a for s in shapes for a in ("--input-shape", s)],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        raise ToolError(f"inspect failed: {listed.stderr.strip()}")
    return [n for n in json.loads(listed.stdout)["nodes"] if n["compressible"]]
