#!/usr/bin/env python3
"""lint_layers.py: the structure rules of the source tree, checked on every test run.

1. Layers: a file includes only headers of its own layer or of the layers below it
     ref/core < ref/model, ref/input < cuda < harness/lib < harness/cli
   (ref/model and ref/input sit side by side: neither includes the other).
2. The include graph of every project header and source has no cycle (depth-first search over
   `#include "..."` edges between project files).
3. Library code (ref/, cuda/, harness/lib/) never runs a program: no system(), popen(), exec*().
4. No function in harness/ (C and the scripts' Python) is longer than 100 lines.
5. Nothing points outside the repository: no '../shared', no external spec/contract/design notes.
Prints every violation and exits 1 if there is one; prints a one-line summary otherwise.
usage: python3 tests/lint_layers.py [SOURCE_DIR]
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
LAYERS = {"ref/core": 0, "ref/model": 1, "ref/input": 1, "cuda": 2, "harness/lib": 3, "harness/cli": 4}
SIDE_BY_SIDE = {("ref/model", "ref/input"), ("ref/input", "ref/model")}
SRC_EXT = (".c", ".h", ".cu", ".cuh")


def layer_of(path):
    rel = os.path.relpath(path, ROOT)
    for d in sorted(LAYERS, key=len, reverse=True):
        if rel.startswith(d + "/"):
            return d
    return None


def project_files():
    out = []
    for d in LAYERS:
        for base, _, names in os.walk(os.path.join(ROOT, d)):
            out += [os.path.join(base, n) for n in names if n.endswith(SRC_EXT)]
    return sorted(out)


def includes(path):
    with open(path, errors="replace") as f:
        return re.findall(r'^\s*#\s*include\s+"([^"]+)"', f.read(), re.M)


def check_layers(files, by_name, errors):
    edges = {}
    for f in files:
        lf = layer_of(f)
        edges[f] = []
        for inc in includes(f):
            target = by_name.get(os.path.basename(inc))
            if target is None:
                continue  # a system or generated header
            edges[f].append(target)
            lt = layer_of(target)
            if lt == lf:
                continue
            if LAYERS[lt] > LAYERS[lf] or (lf, lt) in SIDE_BY_SIDE or (LAYERS[lt] == LAYERS[lf]):
                errors.append("%s includes %s: layer %s may not include layer %s" % (
                    os.path.relpath(f, ROOT), inc, lf, lt))
    return edges


def check_cycles(edges, errors):
    state = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                cyc = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                errors.append("include cycle: " + " -> ".join(os.path.relpath(c, ROOT) for c in cyc))
            elif not state.get(nxt):
                visit(nxt, stack + [nxt])
        state[node] = 2

    for n in edges:
        if not state.get(n):
            visit(n, [n])


def check_no_exec(files, errors):
    for f in files:
        if layer_of(f) == "harness/cli":
            continue
        with open(f, errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                code = line.split("//")[0]
                if re.search(r"\b(system|popen|execv|execvp|execl|execlp)\s*\(", code) and not code.strip().startswith("*"):
                    errors.append("%s:%d: library code runs a program: %s" % (os.path.relpath(f, ROOT), n, line.strip()))


def c_function_lengths(path):
    lines = open(path, errors="replace").read().split("\n")
    start = None
    for i, l in enumerate(lines):
        if start is None and re.match(r"^[A-Za-z_][\w \*]*\([^;]*\)?\s*\{\s*$", l) and "=" not in l.split("(")[0] \
                and not l.startswith(("typedef", "struct", "enum", "union")):
            start, name = i, l.strip()
        elif start is not None and l.startswith("}"):
            yield name, start + 1, i - start + 1
            start = None


def py_function_lengths(path):
    lines = open(path, errors="replace").read().split("\n")
    defs = [(i, l) for i, l in enumerate(lines) if re.match(r"^(\s*)def \w+", l)]
    for k, (i, l) in enumerate(defs):
        indent = len(l) - len(l.lstrip())
        end = len(lines)
        for j in range(i + 1, len(lines)):
            s = lines[j]
            if s.strip() and (len(s) - len(s.lstrip())) <= indent and not s.lstrip().startswith((")", "]", "}")):
                end = j
                break
        while end > i + 1 and not lines[end - 1].strip():
            end -= 1
        yield l.strip(), i + 1, end - i


def check_function_lengths(errors):
    for base, _, names in os.walk(os.path.join(ROOT, "harness")):
        for n in sorted(names):
            p = os.path.join(base, n)
            gen = c_function_lengths(p) if n.endswith(".c") else py_function_lengths(p) if n.endswith(".py") else []
            for name, line, length in gen:
                if length > 100:
                    errors.append("%s:%d: %d lines (more than 100): %s" % (os.path.relpath(p, ROOT), line, length, name[:60]))


def check_outside_references(errors):
    try:
        out = subprocess.run(["git", "-C", ROOT, "grep", "-n", "-I", "-E",
                              r"\.\./shared|shared/spec|spec/eva-clip|contract\.md|design\.md",
                              "--", ".", ":!tests/lint_layers.py"], capture_output=True, text=True)
    except OSError:
        return
    for line in out.stdout.splitlines():
        errors.append("points outside the repository: " + line[:160])


def main():
    errors = []
    files = project_files()
    by_name = {}
    for f in files:
        if f.endswith((".h", ".cuh")):
            by_name.setdefault(os.path.basename(f), f)
    edges = check_layers(files, by_name, errors)
    check_cycles(edges, errors)
    check_no_exec(files, errors)
    check_function_lengths(errors)
    check_outside_references(errors)
    for e in errors:
        print(e)
    if errors:
        print("lint_layers: %d violation(s)" % len(errors))
        return 1
    n_edges = sum(len(v) for v in edges.values())
    print("lint_layers: %d files, %d include edges between project files: layers respected, no cycle, "
          "no program run from library code, no harness function over 100 lines, nothing points outside"
          % (len(files), n_edges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
