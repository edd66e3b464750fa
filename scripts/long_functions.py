#!/usr/bin/env python3
"""List C functions longer than a limit (default 150 lines): a brace counter over
top-level definitions, skipping comments, strings and character literals.
Usage: scripts/long_functions.py [--limit N] [FILES or DIRS ...] (default: src)."""
import os
import re
import sys


def strip(text):
    """The text with comments, strings and char literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j]) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """(name, first line, line count) of each top-level brace block that follows a ')'."""
    text = strip(open(path, encoding="utf-8", errors="replace").read())
    depth, start, res = 0, None, []
    for i, c in enumerate(text):
        if c == "{":
            if depth == 0:
                head = text[max(0, i - 400):i].rstrip()
                m = re.search(r"(\w+)\s*\([^;{}]*\)\s*$", head)
                start = (m.group(1), i) if m and head.endswith(")") else None
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and start:
                name, s = start
                l0 = text.count("\n", 0, s) + 1
                l1 = text.count("\n", 0, i) + 1
                hl = text.count("\n", 0, s - len(text[:s]) + text[:s].rfind(name)) + 1
                res.append((name, hl, l1 - hl + 1))
                start = None
    return res


def main(argv):
    limit = 150
    if argv[:1] == ["--limit"]:
        limit, argv = int(argv[1]), argv[2:]
    paths = []
    for a in argv or ["src"]:
        if os.path.isdir(a):
            for root, _, files in os.walk(a):
                paths += [os.path.join(root, f) for f in files if f.endswith(".c")]
        else:
            paths.append(a)
    rows = [(n, p, l, name) for p in sorted(paths) for name, l, n in functions(p) if n > limit]
    for n, p, l, name in sorted(rows, reverse=True):
        print(f"{n:5d}  {p}:{l}  {name}")
    print(f"# {len(rows)} functions over {limit} lines")


if __name__ == "__main__":
    main(sys.argv[1:])
