#!/usr/bin/env python3
"""Step 4: every LiveStream document in the given files against the CRD's openAPIV3Schema.

A rough structural check with jsonschema: the schema is converted (x-kubernetes-* keys
dropped, nullable -> type [..., null], unknown fields refused), the object is pruned of
non-nullable nulls and defaulted first, list-map keys must be unique, and the CRD's CEL rules
run as on a create. Documents of other kinds are left to step 2.
"""
from __future__ import annotations

import argparse
import sys

import crdlib


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crd", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    crd = crdlib.load_crd(args.crd)
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    per_version = {}
    for v in crd["spec"]["versions"]:
        _, schema = crdlib.version_schema(crd, v["name"])
        per_version[f"{group}/{v['name']}"] = (
            schema, crdlib.json_validator(crdlib.to_jsonschema(schema, root=True)),
            crdlib.CelValidator(schema))

    failures = checked = 0
    for path in args.files:
        for doc in crdlib.load_yaml_docs(path):
            if not isinstance(doc, dict) or doc.get("kind") != kind \
                    or not str(doc.get("apiVersion", "")).startswith(group + "/"):
                continue
            checked += 1
            name = f"{path}: {kind} {doc.get('metadata', {}).get('name')}"
            if doc["apiVersion"] not in per_version:
                print(f"FAIL {name}: apiVersion {doc['apiVersion']} is not served by the CRD")
                failures += 1
                continue
            schema, validator, cel = per_version[doc["apiVersion"]]
            obj = crdlib.prune_and_default(doc, schema)
            errors = (crdlib.schema_errors(validator, obj) + crdlib.list_type_errors(obj, schema)
                      + cel.validate(obj))
            if errors:
                failures += 1
                print(f"FAIL {name}: " + "; ".join(errors))
            else:
                print(f"ok   {name}")
    print(f"{checked} {kind} document(s) in {len(args.files)} file(s): {failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
