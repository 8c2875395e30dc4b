#!/usr/bin/env python3
"""Step 2: kubernetes-validate --strict on every document of the given YAML files.

Runs kubernetes-validate's own validation (kubernetes_validate.utils.validate, strict schemas),
one process for all files, against the oldest Kubernetes version it ships that is >= --min and
the newest it ships. Unlike the CLI, a kind it has no schema for is an error, unless it is in
the explicit --skip list (group/Kind, e.g. monitoring.coreos.com/ServiceMonitor), and each
skipped document is counted in the output. Identical documents (the same object rendered by
helm 3 and helm 4) are validated once.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from collections import Counter

import yaml
from packaging.version import Version

import kubernetes_validate.utils as kv
from kubernetes_validate.version import __version__ as kv_version

# kubernetes-validate reads its (large) _definitions.json for every document; read it once.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)


def pick_versions(minimum: str) -> list[str]:
    shipped = sorted(kv.all_versions(), key=Version)
    usable = [v for v in shipped if Version(v) >= Version(minimum)]
    if not usable:
        raise SystemExit(f"kubernetes-validate {kv_version} ships {shipped[0]}..{shipped[-1]}, "
                         f"nothing >= {minimum}")
    return sorted({usable[0], usable[-1]}, key=Version)


def group_kind(doc: dict) -> str:
    api = str(doc.get("apiVersion", ""))
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    return f"{group}/{doc.get('kind')}" if group else str(doc.get("kind"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min", default="1.30", help="oldest Kubernetes version we support")
    ap.add_argument("--skip", action="append", default=[], help="group/Kind not to validate")
    ap.add_argument("--label", default="")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    versions = pick_versions(args.min)
    skip = set(args.skip)

    failures = 0
    seen: dict[str, str] = {}
    skipped: Counter = Counter()
    total = 0
    for path in args.files:
        try:
            with open(path) as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            print(f"FAIL {path}: not YAML: {e}")
            failures += 1
            continue
        for i, doc in enumerate(docs):
            total += 1
            if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                print(f"FAIL {path} document {i}: no apiVersion/kind")
                failures += 1
                continue
            gk = group_kind(doc)
            name = f"{gk} {doc.get('metadata', {}).get('namespace', '')}/{doc.get('metadata', {}).get('name')}"
            if gk in skip:
                skipped[gk] += 1
                continue
            key = json.dumps(doc, sort_keys=True)
            if key in seen:
                continue
            seen[key] = name
            for v in versions:
                try:
                    kv.validate(doc, v, strict=True)
                except kv.ValidationError as e:
                    where = ".".join(str(p) for p in e.path)
                    print(f"FAIL {path}: {name} against {v}: {where}: {e.message}")
                    failures += 1
                except kv.SchemaNotFoundError as e:
                    print(f"FAIL {path}: {name}: {e.message} (not a built-in kind; add it to "
                          f"the explicit skip list if it is a CRD checked elsewhere)")
                    failures += 1
                    break
    skipped_txt = ", ".join(f"{n} {gk}" for gk, n in sorted(skipped.items())) or "none"
    print(f"{args.label}kubernetes-validate {kv_version} --strict, Kubernetes "
          f"{' and '.join(versions)}: {total} documents ({len(seen)} distinct) in "
          f"{len(args.files)} files; skipped by kind: {skipped_txt}; {failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
