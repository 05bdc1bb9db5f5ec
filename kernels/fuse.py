"""Loop fusion: consecutive elementwise loop nests over the same ranges become one.

After printing, ``z1 = x W1ᵀ`` (BLAS) ``+ b1`` (a loop) and ``a1 = relu(z1)`` (a loop)
are two passes over the same [B, h] array; fusing them reads ``z1`` once. A convolution's
nest (with its sum loops inside) takes the ReLU after it the same way.

Two nests are fused only when their ``for`` headers have equal ranges, the first writes
its targets only at the current element (not a scatter), and the second reads the
first's targets only at the current element -- so every element is computed from the
same values as before, in the same order.
"""
from __future__ import annotations

import re

HEADER = re.compile(r"^(\s*)for (\w+) in range\((.+)\):$")


def nest(lines):
    """(start, loop variables, extents, body) of the loop nest ``lines`` end with, or None.

    ``start`` counts the set-up lines before the nest (a zero fill). The nest is the
    longest chain of ``for`` headers each one level deeper than the last; its body may
    hold deeper lines (a reduction's loops) but must end with a statement at the
    innermost level, where a fused body is appended.
    """
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
        pad = "    " * depth
        if (names and body and all(line.startswith(pad) for line in body)
                and not body[-1][len(pad):].startswith((" ", "for ", "if "))):
            return start, names, extents, [line[len(pad):] for line in body]
        if names:
            return None
    return None


def _rename(text, mapping):
    """Rename loop variables all at once ((i, j) -> (j, i) must not collapse to j, j)."""
    if not mapping:
        return text
    names = "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
    return re.sub(rf"(?<![\w.])({names})(?!\w)", lambda m: mapping[m.group(1)], text)


def fuse(blocks):
    """Fuse a list of (target, lines) blocks; returns the fused lines with comments."""
    out = []  # list of [targets, lines]
    for target, lines in blocks:
        if out and _fusable(out[-1], lines):
            prev = out[-1]
            start, names, extents, body = nest(prev[1])
            start2, names2, _, body2 = nest(lines)
            body2 = [_rename(s, dict(zip(names2, names))) for s in body2]
            header = [("    " * d) + f"for {n} in range({e}):"
                      for d, (n, e) in enumerate(zip(names, extents))]
            # the second block's set-up (a zero fill) goes before the fused loops
            prev[1] = (prev[1][:start] + lines[:start2] + header
                       + ["    " * len(names) + s for s in body + body2])
            prev[0].append(target)
        else:
            out.append([[target], list(lines)])
    lines = []
    for targets, body in out:
        lines.append("# " + ", ".join(targets))
        lines += body
    return lines


def _fusable(prev, lines):
    a, b = nest(prev[1]), nest(lines)
    if a is None or b is None or a[2] != b[2]:
        return False
    setup = "\n".join(lines[:b[0]])
    if any(re.search(rf"(?<![\w.]){re.escape(t)}(?!\w)", setup) for t in prev[0]):
        return False
    here = ", ".join(a[1])
    # loop variables are named per nest (kernels.names): a name the second nest sets
    # inside (an inner loop, a temporary) must not be one of the fused loops' names
    if _defined(b[3]) & set(a[1]):
        return False
    # every array the first nest writes (its targets, and stores such as a shared
    # reduction's buffer) is written at the current element only ...
    stored = {m.group(1) for m in (re.match(r"\s*(\w+)\[", s) for s in a[3]) if m}
    written = set(prev[0]) | {t for t in stored if _writes(a[3], t)}
    for t in written:
        if any(w != here for w in _writes(a[3], t)):
            return False
    mapping = dict(zip(b[1], a[1]))
    body2 = "\n".join(_rename(s, mapping) for s in b[3])
    for t in written:  # ... and read by the second nest at the current element only
        for m in re.finditer(rf"(?<![\w.]){re.escape(t)}\[([^\]]*)\]", body2):
            if m.group(1) != here:
                return False
        if re.search(rf"(?<![\w.]){re.escape(t)}(?![\w\[])", body2):
            return False
    return True


def _defined(body):
    """Names the statements of ``body`` set: loop variables and assigned plain names."""
    out = set()
    for line in body:
        m = re.match(r"\s*for (\w+) in |\s*(\w+)\s*[-+*/]?=(?!=)", line)
        if m:
            out.add(m.group(1) or m.group(2))
    return out


def _writes(body, target):
    """The subscripts (text) at which the statements of ``body`` assign to ``target``
    (None for an assignment to the whole name)."""
    out = []
    for line in body:
        s = line.strip()
        if not re.match(rf"{re.escape(target)}(?!\w)", s):
            continue
        rest, sub = s[len(target):], None
        if rest.startswith("["):
            depth = 0
            for k, ch in enumerate(rest):
                depth += {"[": 1, "]": -1}.get(ch, 0)
                if depth == 0:
                    sub, rest = rest[1:k], rest[k + 1:]
                    break
        if re.match(r"\s*(\+|-|\*|/)?=(?!=)", rest):
            out.append(sub)
    return out
