#!/usr/bin/env python3
"""Builds gotch v0.9.1's C wrapper (libtch) as a shared library against any libtorch, e.g. a PyTorch
install's CUDA build, for a cachet binary linked with toolchain/cuda/build.sh.

gotch wraps ~2,500 libtorch ops, generated for libtorch 2.1; later releases changed some signatures. Cachet
calls a few hundred of them (--used, read off the binary). So every generated function keeps its C
signature, but only the used ones keep their bodies; the rest become stubs that report an error if ever
called. Any function that still fails to compile is stubbed too and named on stderr: the build reports
what it could not wrap instead of stopping at the first incompatible op.
"""
import argparse
import os
import re
import subprocess
import sys
import time

SIG = re.compile(r"^[A-Za-z_][\w:<>,\s\*&]*?\b(\w+)\s*\(")


def blocks(lines):
    """Yields (start, end, name) for each function defined at column 0 (end exclusive)."""
    i = 0
    while i < len(lines):
        line = lines[i]
        m = SIG.match(line)
        if not m or line.startswith(("#", "//", "using ", "typedef ", "extern ", "namespace ")) or line.rstrip().endswith(";"):
            i += 1
            continue
        depth, seen, j = 0, False, i
        while j < len(lines):
            code = re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'|//.*', "", lines[j])
            depth += code.count("{") - code.count("}")
            seen = seen or "{" in code
            j += 1
            if seen and depth == 0:
                break
            if not seen and code.rstrip().endswith(";"):  # a declaration spanning lines
                break
        if seen:
            yield i, j, m.group(1)
        i = j


def stub(lines, start, end, name):
    """The function's signature with a body that only records an error."""
    text = "".join(lines[start:end])
    sig = text[: text.index("{")].rstrip()
    ret = "" if re.match(r"^void\s+\w", sig) else " return {};"
    return f'{sig} {{ torch_last_err = strdup("{name}: not built into this libtch (see toolchain/cuda/libtch.py)");{ret} }}\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, help="gotch's libtch directory")
    ap.add_argument("--used", required=True, help="file listing the atg_ functions the binary calls, one per line")
    ap.add_argument("--include", action="append", default=[], help="libtorch include directory (repeatable)")
    ap.add_argument("--libdir", required=True, help="libtorch's lib directory")
    ap.add_argument("--libs", default="torch,torch_cpu,c10", help="libraries to link (comma-separated, e.g. add torch_cuda,c10_cuda)")
    ap.add_argument("--cxxflags", default="", help="extra compiler flags (e.g. -D_GLIBCXX_USE_CXX11_ABI=1)")
    ap.add_argument("--out", required=True, help="the shared library to write")
    a = ap.parse_args()

    used = {l.strip() for l in open(a.used) if l.strip()}
    api = open(os.path.join(a.src, "torch_api.cpp")).read().splitlines(keepends=True)
    gen = open(os.path.join(a.src, "torch_api_generated.cpp.h")).read().splitlines(keepends=True)
    # Unused generated functions are stubbed from the start; their bodies are where the API drift is.
    gen_out, kept = list(gen), 0
    for start, end, name in reversed(list(blocks(gen))):
        if name in used:
            kept += 1
        else:
            gen_out[start:end] = [stub(gen, start, end, name)]
    include = [i for i, l in enumerate(api) if l.strip() == '#include "torch_api_generated.cpp.h"']
    if len(include) != 1:
        sys.exit("libtch.py: torch_api.cpp does not include torch_api_generated.cpp.h once")
    lines = api[: include[0]] + gen_out + api[include[0] + 1 :]
    missing = used - {n for _, _, n in blocks(gen)}
    print(f"libtch.py: {kept} of {len(used)} used ops found in gotch's wrappers; missing: {sorted(missing) or 'none'}", file=sys.stderr)

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    src = os.path.abspath(a.out) + ".cpp"
    stubbed = []
    for attempt in range(6):
        with open(src, "w") as f:
            f.writelines(lines)
        cmd = (["g++", "-std=c++17", "-O2", "-fPIC", "-shared", "-w", "-I", a.src]
               + [f for i in a.include for f in ("-I", i)] + a.cxxflags.split()
               + [src, "-o", a.out, "-L", a.libdir, "-Wl,--no-as-needed"]
               + ["-l" + l for l in a.libs.split(",") if l] + ["-Wl,-rpath," + a.libdir])
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        print(f"libtch.py: compile {attempt + 1}: exit {r.returncode} in {time.time() - t0:.0f} s", file=sys.stderr)
        if r.returncode == 0:
            break
        bad_lines = {int(n) - 1 for n in re.findall(re.escape(os.path.basename(src)) + r":(\d+):", r.stderr)}
        # Two drifts outside the wrappers have known fixes: a header that moved (its include is dropped)
        # and c10's optional aliases (gone in favour of std::optional).
        gone = {b for b in bad_lines if lines[b].startswith("#include") and "No such file" in r.stderr}
        for b in gone:
            print(f"libtch.py: dropping {lines[b].strip()}", file=sys.stderr)
            lines[b] = "// (missing in this libtorch) " + lines[b]
        if re.search(r"'(optional|nullopt)' (is not a member of|in namespace) 'c10'", r.stderr) and not any("cachet-c10-optional" in l for l in lines):
            at = max(i for i, l in enumerate(lines[:200]) if l.startswith("#include")) + 1
            lines[at:at] = ["#include <optional> // cachet-c10-optional\n", "namespace c10 { using std::optional; using std::nullopt; }\n"]
            print("libtch.py: c10::optional is gone: aliasing std::optional", file=sys.stderr)
            continue
        if gone:
            continue
        fix = [(s, e, n) for s, e, n in blocks(lines) if any(s <= b < e for b in bad_lines)]
        outside = [b for b in bad_lines if not any(s <= b < e for s, e, _ in fix)]
        if not fix or outside:
            sys.stderr.write(r.stderr[-6000:])
            sys.exit(f"libtch.py: errors outside any wrapper function (lines {sorted(b + 1 for b in outside)[:10]}); cannot stub them")
        for s, e, n in sorted(fix, reverse=True):
            lines[s:e] = [stub(lines, s, e, n)]
            stubbed.append(n)
    else:
        sys.exit("libtch.py: still failing after stubbing")
    used_stubbed = sorted(n for n in stubbed if n in used)
    print(f"libtch.py: wrote {a.out}; stubbed after compile errors: {sorted(stubbed) or 'none'}", file=sys.stderr)
    if used_stubbed:
        print(f"libtch.py: WARNING: ops Cachet calls were stubbed and will fail at run time: {used_stubbed}", file=sys.stderr)


if __name__ == "__main__":
    main()
