#!/usr/bin/env python3
# Splits a `perf report --sort dso,sym -g none --stdio` of a server into where
# its CPU time goes: kernel, libuv, V8 (runtime and builtins), JIT code (JS
# compiled by V8, named through --perf-basic-prof), N-API (the glue between V8
# and an addon), ours (qbipc's native helper, or libqb in the C server), libc,
# other. Reads stdin, prints one line of shares in percent.
import re
import sys

CATEGORIES = ['kernel', 'libuv', 'V8', 'JIT', 'N-API', 'ours', 'libc', 'other']


def category(dso: str, sym: str) -> str:
    if dso == '[kernel.kallsyms]' or sym.startswith('[k]'):
        return 'kernel'
    name = sym[4:] if sym[:4] in ('[.] ', '[k] ') else sym
    if dso.startswith(('perf-', '[JIT]')) or name.startswith(('JS:', 'LazyCompile:', 'Function:')):
        return 'JIT'
    if dso == 'libuv.so.1' or re.match(r'uv_|uv__', name):
        return 'libuv'
    if re.match(r'napi_|v8impl::|node::napi|Napi::', name):
        return 'N-API'
    if dso.startswith('qbipc_native') or dso.startswith('libqb') or dso == 'qb-echo-server':
        return 'ours'
    if dso.startswith('libc.so') or dso.startswith('libpthread') or dso == '[vdso]':
        return 'libc'
    if dso == 'node' or name.startswith(('Builtins_', 'v8::', 'node::')):
        return 'V8' if not name.startswith('node::') else 'other'
    return 'other'


shares = dict.fromkeys(CATEGORIES, 0.0)
for line in sys.stdin:
    m = re.match(r'\s*([\d.]+)%\s+(.+?)\s+(\[[.k]\] .*)$', line)
    if m:
        shares[category(m.group(2), m.group(3).strip())] += float(m.group(1))
print('split: ' + ' '.join(f'{k}={v:.1f}%' for k, v in shares.items()))
