# Sourced by the scripts that need Python tools from PyPI. `tool_venv NAME REQUIREMENTS` makes
# (once) a venv outside the clone, in ${ONAIR_TOOLS_CACHE:-~/.cache/onair-tools}, named by its
# pins and the Python version, so changing the requirements installs afresh; it sets VENV and PY.
# Concurrent callers wait on one lock.
tool_venv() {
  local name=$1 requirements=$2
  local cache=${ONAIR_TOOLS_CACHE:-${HOME:-/root}/.cache/onair-tools}
  local base_py=${ONAIR_TOOLS_PYTHON:-python3} pyver key
  pyver=$("$base_py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  key=$( { cat "$requirements"; echo "$pyver"; } | sha256sum | cut -c1-16)
  VENV=$cache/venv-$name-py$pyver-$key
  PY=$VENV/bin/python
  [[ -f $VENV/.ok ]] && return 0
  mkdir -p "$cache"
  (
    flock 9
    if [[ ! -f $VENV/.ok ]]; then
      printf '[tools] creating %s (pip install -r %s)\n' "$VENV" "$requirements" >&2
      rm -rf "$VENV"
      "$base_py" -m venv "$VENV"
      "$PY" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
      touch "$VENV/.ok"
    fi
  ) 9>"$cache/.lock"
}
