#!/usr/bin/env python3
"""Step 3: the CRD's CEL rules against a table of cases, and structural-schema sanity checks.

Each case in cel-cases.yaml is a LiveStream `spec` (or `specFrom: <yaml file of a LiveStream>`),
optionally an `oldSpec` (an update), and `expect: valid` or `expect: {message: <substring or
list of substrings>}`. As the API server does, the spec is pruned of non-nullable nulls and
defaulted, then checked against the OpenAPI schema (unknown fields refused) and every
x-kubernetes-validations rule. A refused case passes when each expected substring is in some
error and every error matches some expected substring. Every rule in the CRD must pass in at
least one case and refuse in at least one, so a new rule needs new cases.
"""
from __future__ import annotations

import argparse
import os
import sys

import yaml

import crdlib


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crd", required=True)
    ap.add_argument("--also-crd", action="append", default=[],
                    help="another copy of the CRD (the chart's) that must be identical")
    ap.add_argument("--cases", required=True)
    ap.add_argument("--root", required=True, help="repository root, for specFrom paths")
    ap.add_argument("--min-k8s", default="1.30")
    args = ap.parse_args()
    min_k8s = tuple(int(x) for x in args.min_k8s.split(".")[:2])

    crd = crdlib.load_crd(args.crd)
    failures = 0
    for other in args.also_crd:
        if crdlib.load_crd(other) != crd:
            print(f"FAIL {other} differs from {args.crd}")
            failures += 1

    # --- structural sanity, every version ---
    for v in crd["spec"]["versions"]:
        probs = crdlib.structural_problems(v["schema"]["openAPIV3Schema"], min_k8s)
        for p in probs:
            print(f"FAIL schema {v['name']}: {p}")
        failures += len(probs)
        if not probs:
            print(f"ok   schema {v['name']}: formats, nullable enums, list-map keys, defaults, "
                  f"transition-rule placement")

    # --- CEL cases, first version ---
    version, schema = crdlib.version_schema(crd)
    validator = crdlib.json_validator(crdlib.to_jsonschema(schema, root=True))
    cel = crdlib.CelValidator(schema)
    print(f"     {len(cel.rules)} CEL rules in {crd['metadata']['name']} {version}: "
          + ", ".join(f"{r.id} ({r.rule})" for r in cel.rules))

    with open(args.cases) as f:
        cases = yaml.safe_load(f)["cases"]
    names = set()
    for case in cases:
        name = case["name"]
        if name in names:
            print(f"FAIL case {name!r} is listed twice")
            failures += 1
        names.add(name)
        spec = case.get("spec")
        if "specFrom" in case:
            docs = [d for d in crdlib.load_yaml_docs(os.path.join(args.root, case["specFrom"]))
                    if isinstance(d, dict) and d.get("kind") == "LiveStream"]
            spec = docs[0]["spec"]
        obj = crdlib.prune_and_default({"spec": spec}, schema)
        errors = crdlib.schema_errors(validator, obj) + crdlib.list_type_errors(obj, schema)
        if "oldSpec" in case:
            old = crdlib.prune_and_default({"spec": case["oldSpec"]}, schema)
            errors += cel.validate(obj, old)
        else:
            errors += cel.validate(obj)
        expect = case["expect"]
        kind = "update" if "oldSpec" in case else "create"
        if expect == "valid":
            ok = not errors
            want = "valid"
        else:
            subs = expect["message"]
            subs = [subs] if isinstance(subs, str) else list(subs)
            ok = bool(errors) and all(any(s in e for e in errors) for s in subs) \
                and all(any(s in e for s in subs) for e in errors)
            want = "refused with " + " + ".join(repr(s) for s in subs)
        got = "valid" if not errors else "refused: " + "; ".join(errors)
        if ok:
            print(f"ok   {kind:6} {name}: {got}")
        else:
            print(f"FAIL {kind:6} {name}: expected {want}, got {got}")
            failures += 1

    for r in cel.rules:
        missing = [w for w, n in (("passes", r.passed), ("refuses", r.refused)) if n == 0]
        if missing:
            print(f"FAIL rule {r.id} ({r.rule!r}): no case in which it "
                  + " and none in which it ".join(missing) + f"; add cases to {args.cases}")
            failures += 1
    print(f"{len(cases)} cases, {len(cel.rules)} rules: {failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
