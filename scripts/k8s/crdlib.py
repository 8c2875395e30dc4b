"""What the API server does with a CRD's structural schema, approximated offline.

Shared by cel_check.py (step 3) and crd_objects_check.py (step 4):
- load_crd: the CustomResourceDefinition document of a YAML file;
- prune_and_default: structural defaulting (nulls on non-nullable fields dropped, `default`s
  applied, recursively into defaulted values), as the apiserver does before validating;
- to_jsonschema: the openAPIV3Schema as JSON Schema (nullable -> type [..., "null"], enum kept as
  is so an explicit null must be listed, int-or-string, unknown fields refused unless
  x-kubernetes-preserve-unknown-fields; x-kubernetes-* keys dropped);
- collect_rules / CelValidator: every x-kubernetes-validations rule with its schema location,
  evaluated with cel-python with Kubernetes semantics (rules only on present, non-null values;
  a null field reads as absent for has(); transition rules (oldSelf) only on update where the
  old value at that node exists and is correlatable).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Iterator

import yaml

def load_yaml_docs(path: str) -> list[Any]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_crd(path: str) -> dict:
    crds = [d for d in load_yaml_docs(path)
            if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]
    if len(crds) != 1:
        raise SystemExit(f"{path}: expected one CustomResourceDefinition, found {len(crds)}")
    return crds[0]


def version_schema(crd: dict, version: str | None = None) -> tuple[str, dict]:
    versions = crd["spec"]["versions"]
    if version is None:
        v = versions[0]
    else:
        matches = [v for v in versions if v["name"] == version]
        if not matches:
            raise KeyError(version)
        v = matches[0]
    return v["name"], v["schema"]["openAPIV3Schema"]


def fmt_path(path: list[str]) -> str:
    out = ""
    for p in path:
        if p in ("[]", "{}"):
            out += p
        else:
            out += ("." if out else "") + p
    return out or "<root>"


# ---------------------------------------------------------------------------------------------
# Pruning of non-nullable nulls, and defaulting
# ---------------------------------------------------------------------------------------------

def prune_and_default(value: Any, schema: dict) -> Any:
    """Returns a defaulted deep copy (k8s.io/apiextensions-apiserver structuraldefaulting)."""
    value = copy.deepcopy(value)
    _default(value, schema)
    return value


def _default(x: Any, s: dict) -> None:
    if isinstance(x, dict):
        props = s.get("properties") or {}
        for k, prop in props.items():
            if k in x and x[k] is None and not prop.get("nullable", False):
                del x[k]  # nulls on non-nullable fields are pruned before defaulting
            if k not in x and "default" in prop:
                x[k] = copy.deepcopy(prop["default"])
        addl = s.get("additionalProperties")
        for k, v in x.items():
            if k in props:
                _default(v, props[k])
            elif isinstance(addl, dict):
                _default(v, addl)
    elif isinstance(x, list) and isinstance(s.get("items"), dict):
        for v in x:
            _default(v, s["items"])


# ---------------------------------------------------------------------------------------------
# JSON Schema conversion
# ---------------------------------------------------------------------------------------------

def to_jsonschema(s: dict, root: bool = False) -> dict:
    out: dict = {}
    for k, v in s.items():
        if k.startswith("x-kubernetes-") or k in ("nullable", "description", "default",
                                                  "example", "externalDocs"):
            continue
        if k == "properties":
            out[k] = {pk: to_jsonschema(pv) for pk, pv in v.items()}
        elif k in ("items", "not"):
            out[k] = to_jsonschema(v)
        elif k == "additionalProperties":
            out[k] = to_jsonschema(v) if isinstance(v, dict) else v
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [to_jsonschema(x) for x in v]
        else:
            out[k] = copy.deepcopy(v)
    if s.get("x-kubernetes-int-or-string") and "type" not in s:
        out["anyOf"] = out.get("anyOf", []) + [{"type": "integer"}, {"type": "string"}]
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if root:  # apiVersion, kind and metadata are always allowed at the root
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
    if (s.get("type") == "object" and "properties" in s and "additionalProperties" not in s
            and not s.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False  # strict field validation: unknown field refused
    return out


_UUID_RE = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def json_validator(schema: dict):
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("uuid")
    def _uuid(v: Any) -> bool:
        return not isinstance(v, str) or bool(_UUID_RE.match(v))

    @checker.checks("date-time")
    def _dt(v: Any) -> bool:
        return not isinstance(v, str) or bool(_DATETIME_RE.match(v))

    return jsonschema.Draft202012Validator(schema, format_checker=checker)


def schema_errors(validator, value: Any, prefix: str = "") -> list[str]:
    errs = []
    for e in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join(str(p) for p in e.absolute_path)
        where = ".".join(x for x in (prefix, path) if x) or "<root>"
        errs.append(f"{where}: {e.message}")
    return errs


def list_type_errors(x: Any, s: dict, path: list[str] | None = None) -> list[str]:
    """x-kubernetes-list-type map/set uniqueness, which the API server enforces."""
    path = path or []
    errs: list[str] = []
    if isinstance(x, dict):
        props = s.get("properties") or {}
        addl = s.get("additionalProperties") if isinstance(s.get("additionalProperties"), dict) else None
        for k, v in x.items():
            sub = props.get(k, addl)
            if sub is not None:
                errs += list_type_errors(v, sub, path + [k])
    elif isinstance(x, list):
        lt = s.get("x-kubernetes-list-type")
        seen: set = set()
        for i, v in enumerate(x):
            if lt == "map" and isinstance(v, dict):
                key = tuple(repr(v.get(k)) for k in s.get("x-kubernetes-list-map-keys") or [])
            elif lt == "set":
                key = repr(v)
            else:
                key = None
            if key is not None:
                if key in seen:
                    errs.append(f"{'.'.join(path + [str(i)])}: Duplicate value: {v!r}")
                seen.add(key)
            if isinstance(s.get("items"), dict):
                errs += list_type_errors(v, s["items"], path + [str(i)])
    return errs


# ---------------------------------------------------------------------------------------------
# Structural-schema sanity checks
# ---------------------------------------------------------------------------------------------

# k8s.io/apiextensions-apiserver/pkg/apiserver/validation/formats.go, supportedVersionedFormats:
# string formats (compared with "-" removed, as go-openapi normalises them); integer formats are
# only int32/int64 and number formats only float/double; every other format is "unrecognized"
# (warned about on create, and stripped, i.e. not validated).
STRING_FORMATS_SINCE = {
    **{f: (1, 0) for f in (
        "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid",
        "uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor",
        "rgbcolor", "byte", "password", "date", "duration", "datetime", "date-time", "quantity")},
    "k8s-short-name": (1, 34),
    "k8s-long-name": (1, 34),
}
INT_FORMATS = {"int32", "int64"}
NUMBER_FORMATS = {"float", "double"}


def walk_schema(s: dict, path: list[str] | None = None) -> Iterator[tuple[list[str], dict]]:
    path = path or []
    yield path, s
    for k, v in (s.get("properties") or {}).items():
        yield from walk_schema(v, path + [k])
    if isinstance(s.get("items"), dict):
        yield from walk_schema(s["items"], path + ["[]"])
    if isinstance(s.get("additionalProperties"), dict):
        yield from walk_schema(s["additionalProperties"], path + ["{}"])
    for comb in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(comb) or []):
            yield from walk_schema(sub, path + [f"<{comb}[{i}]>"])


def structural_problems(schema: dict, min_k8s: tuple[int, int]) -> list[str]:
    probs = []
    supported = {f.replace("-", "") for f, since in STRING_FORMATS_SINCE.items() if since <= min_k8s}
    for path, s in walk_schema(schema):
        where = fmt_path(path)
        fmt, typ = s.get("format"), s.get("type")
        if fmt:
            if typ in (None, "string"):
                ok = fmt.replace("-", "") in supported
            elif typ == "integer":
                ok = fmt in INT_FORMATS
            elif typ == "number":
                ok = fmt in NUMBER_FORMATS
            else:
                ok = False
            if not ok:
                probs.append(f"{where}: format {fmt!r} is not a format the API server knows for "
                             f"type {typ or '<none>'} at Kubernetes {min_k8s[0]}.{min_k8s[1]} "
                             f"(unrecognized format: warned about, then ignored)")
        if s.get("nullable") and "enum" in s and None not in s["enum"]:
            probs.append(f"{where}: nullable: true with an enum {s['enum']} that lacks null: "
                         f"an explicit null is refused (\"Unsupported value: null\")")
        if s.get("x-kubernetes-list-type") == "map":
            items = s.get("items") or {}
            for key in s.get("x-kubernetes-list-map-keys") or []:
                prop = (items.get("properties") or {}).get(key)
                if prop is None:
                    probs.append(f"{where}: list-map key {key!r} is not a property of the items")
                elif key not in (items.get("required") or []) and "default" not in prop:
                    probs.append(f"{where}: list-map key {key!r} must be required or defaulted")
        if "default" in s:
            errs = schema_errors(json_validator(to_jsonschema(s)), s["default"])
            probs += [f"{where}: default {s['default']!r} is invalid: {e}" for e in errs]
    for path, rule in collect_rules(schema):
        if rule.transition:
            bad = [i for i, p in enumerate(path) if p == "[]"
                   and _node_at(schema, path[:i]).get("x-kubernetes-list-type") != "map"]
            if bad:
                probs.append(f"{fmt_path(path)}: transition rule {rule.rule!r} sits under a list "
                             f"that is not x-kubernetes-list-type: map (oldSelf cannot be "
                             f"correlated; the API server refuses the CRD)")
    return probs


def _node_at(schema: dict, path: list[str]) -> dict:
    s = schema
    for p in path:
        if p == "[]":
            s = s["items"]
        elif p == "{}":
            s = s["additionalProperties"]
        else:
            s = s["properties"][p]
    return s


# ---------------------------------------------------------------------------------------------
# CEL rules
# ---------------------------------------------------------------------------------------------

@dataclass
class Rule:
    path: tuple
    index: int
    rule: str
    message: str | None
    message_expression: str | None
    optional_old_self: bool
    transition: bool
    program: Any = None
    msg_program: Any = None
    passed: int = 0
    refused: int = 0

    @property
    def id(self) -> str:
        return f"{fmt_path(list(self.path))}#{self.index}"


_OLD_SELF = re.compile(r"\boldSelf\b")


def collect_rules(schema: dict) -> list[tuple[list[str], Rule]]:
    out = []
    for path, s in walk_schema(schema):
        for i, v in enumerate(s.get("x-kubernetes-validations") or []):
            out.append((path, Rule(
                path=tuple(path), index=i, rule=v["rule"], message=v.get("message"),
                message_expression=v.get("messageExpression"),
                optional_old_self=bool(v.get("optionalOldSelf", False)),
                transition=bool(_OLD_SELF.search(v["rule"])))))
    return out


def to_cel(value: Any, s: dict | None):
    """JSON value -> cel-python value, typed by the schema (Kubernetes' UnstructuredToVal)."""
    from celpy import celtypes

    s = s or {}
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        if s.get("type") == "number":
            return celtypes.DoubleType(float(value))
        return celtypes.IntType(value)
    if isinstance(value, float):
        if s.get("type") == "integer" and value.is_integer():
            return celtypes.IntType(int(value))
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, list):
        return celtypes.ListType([to_cel(v, s.get("items")) for v in value])
    if isinstance(value, dict):
        props = s.get("properties") or {}
        addl = s.get("additionalProperties") if isinstance(s.get("additionalProperties"), dict) else None
        m = {}
        for k, v in value.items():
            if k in props:
                if v is None:
                    continue  # a null field of an object reads as absent (has() is false)
                m[celtypes.StringType(k)] = to_cel(v, props[k])
            else:
                m[celtypes.StringType(k)] = to_cel(v, addl)
        return celtypes.MapType(m)
    raise TypeError(f"cannot map {type(value)} to CEL")


_MISSING = object()


class CelValidator:
    def __init__(self, schema: dict):
        import celpy

        self.schema = schema
        self.env = celpy.Environment()
        self.rules: list[Rule] = []
        self.by_path: dict[tuple, list[Rule]] = {}
        for path, r in collect_rules(schema):
            r.program = self.env.program(self.env.compile(r.rule))
            if r.message_expression:
                r.msg_program = self.env.program(self.env.compile(r.message_expression))
            self.rules.append(r)
            self.by_path.setdefault(tuple(path), []).append(r)

    def validate(self, value: Any, old: Any = _MISSING, path: list[str] | None = None,
                 schema: dict | None = None) -> list[str]:
        """Errors of every rule at and under `path` (value/old are the values at `path`)."""
        path = path or []
        schema = schema if schema is not None else _node_at(self.schema, path)
        errors: list[str] = []
        self._walk(value, old, path, [], schema, errors)
        return errors

    def _walk(self, x, old, spath, vpath, s, errors):
        if x is None:
            return  # rules only run on present, non-null values
        for r in self.by_path.get(tuple(spath), []):
            self._eval(r, x, old, s, vpath, errors)
        if isinstance(x, dict):
            props = s.get("properties") or {}
            addl = s.get("additionalProperties") if isinstance(s.get("additionalProperties"), dict) else None
            for k, v in x.items():
                o = old.get(k, _MISSING) if isinstance(old, dict) else _MISSING
                if o is None:
                    o = _MISSING
                if k in props:
                    self._walk(v, o, spath + [k], vpath + [k], props[k], errors)
                elif addl is not None:
                    self._walk(v, o, spath + ["{}"], vpath + [k], addl, errors)
        elif isinstance(x, list) and isinstance(s.get("items"), dict):
            keys = s.get("x-kubernetes-list-map-keys") or []
            olds = {}
            if s.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
                for o in old:
                    if isinstance(o, dict):
                        olds[tuple(o.get(k) for k in keys)] = o
            for i, v in enumerate(x):
                o = olds.get(tuple(v.get(k) for k in keys), _MISSING) if isinstance(v, dict) else _MISSING
                self._walk(v, o, spath + ["[]"], vpath + [str(i)], s["items"], errors)

    def _eval(self, r: Rule, x, old, s, vpath, errors):
        import celpy
        from celpy import celtypes

        act = {"self": to_cel(x, s)}
        if r.transition:
            if old is _MISSING:
                if not r.optional_old_self:
                    return  # transition rules run only on update, with an old value here
                raise SystemExit(f"{r.id}: optionalOldSelf is not supported by this checker")
            act["oldSelf"] = to_cel(old, s)
        where = ".".join(vpath) or "<root>"
        try:
            ok = r.program.evaluate(act)
        except celpy.CELEvalError as e:
            r.refused += 1
            errors.append(f"{where}: rule {r.rule!r} failed to evaluate: {e.args[0] if e.args else e}")
            return
        if not isinstance(ok, (bool, celtypes.BoolType)):
            errors.append(f"{where}: rule {r.rule!r} did not evaluate to a bool: {ok!r}")
            r.refused += 1
            return
        if ok:
            r.passed += 1
            return
        r.refused += 1
        msg = r.message or f"failed rule: {r.rule}"
        if r.msg_program is not None:
            try:
                msg = str(r.msg_program.evaluate(act))
            except celpy.CELEvalError:
                pass
        errors.append(f"{where}: Invalid value: {msg}")
