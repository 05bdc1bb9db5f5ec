"""Loop fusion: consecutive elementwise loop nests over the same ranges become one.

After printing, ``z1 = x W1ᵀ`` (BLAS) ``+ b1`` (a loop) and ``a1 = relu(z1)`` (a loop)
are two passes over the same [B, h] array; fusing them reads ``z1`` once. Two nests are
fused only when both are *simple* (``for`` headers then plain statements, nothing
hoisted between the loops), their ranges are equal, and the second reads the first's
target only at the current element -- so every element is computed from the same
values as before, in the same order.
"""
from __future__ import annotations

import re

HEADER = re.compile(r"^(\s*)for (\w+) in range\((.+)\):$")


def simple_nest(lines):
    """(loop variables, extents, body lines) if ``lines`` end in a simple nest, else None;
    also returns how many leading lines come before the nest."""
    for start in range(len(lines)):
        names, extents, depth = [], [], 0
        k = start
        while k < len(lines):
            m = HEADER.match(lines[k])
            if not m or len(m.group(1)) != 4 * depth:
                break
            names.append(m.group(2))
            extents.append(m.group(3))
            depth += 1
            k += 1
        body = lines[k:]
        if names and body and all(line.startswith("    " * depth) and not
                                  line[4 * depth:].startswith((" ", "for ", "if "))
                                  for line in body):
            return start, names, extents, [line[4 * depth:] for line in body]
        if names or k > start:
            continue
    return None


def _rename(text, mapping):
    for old, new in mapping.items():
        text = re.sub(rf"(?<![\w.]){re.escape(old)}(?!\w)", new, text)
    return text


def fuse(blocks):
    """Fuse a list of (target, lines) blocks; returns the fused lines with comments."""
    out = []  # list of [targets, lines]
    for target, lines in blocks:
        if out and _fusable(out[-1], target, lines):
            prev = out[-1]
            start, names, extents, body = simple_nest(prev[1])
            start2, names2, _, body2 = simple_nest(lines)
            body2 = [_rename(s, dict(zip(names2, names))) for s in body2]
            nest = [("    " * d) + f"for {n} in range({e}):"
                    for d, (n, e) in enumerate(zip(names, extents))]
            # the second block's set-up (a zero fill) goes before the fused loops
            prev[1] = (prev[1][:start] + lines[:start2] + nest
                       + ["    " * len(names) + s for s in body + body2])
            prev[0].append(target)
        else:
            out.append([[target], list(lines)])
    lines = []
    for targets, body in out:
        lines.append("# " + ", ".join(targets))
        lines += body
    return lines


def _fusable(prev, target, lines):
    a, b = simple_nest(prev[1]), simple_nest(lines)
    if a is None or b is None or a[2] != b[2]:
        return False
    setup = "\n".join(lines[:b[0]])
    if any(re.search(rf"(?<![\w.]){re.escape(t)}(?!\w)", setup) for t in prev[0]):
        return False
    mapping = dict(zip(b[1], a[1]))
    body2 = "\n".join(_rename(s, mapping) for s in b[3])
    here = ", ".join(a[1])
    for t in prev[0]:  # every read of an earlier target must be at the current element
        for m in re.finditer(rf"(?<![\w.]){re.escape(t)}\[([^\]]*)\]", body2):
            if m.group(1) != here:
                return False
        if re.search(rf"(?<![\w.]){re.escape(t)}(?![\w\[])", body2):
            return False
    return True
