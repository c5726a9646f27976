# Sourced by scripts/demo and scripts/test: make sure .venv exists and matches pyproject.toml.
# Installs the Debian packages named in GAVEL_DEBS (space-separated) when running as root
# (e.g. golang for the ledger interoperability check). Idempotent and quiet when nothing is
# missing. Reads no positional arguments: the caller's own arguments pass through untouched.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

read -r -a need_debs <<<"${GAVEL_DEBS:-}"
missing=()
for deb in "${need_debs[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "gavel: installing Debian packages: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "gavel: missing Debian packages (install them as root): ${missing[*]}" >&2
  fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "gavel: creating .venv" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.gavel-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "gavel: installing the project into .venv (first run takes a minute)" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' >.venv/pip.log 2>&1 \
    || { cat .venv/pip.log >&2; exit 1; }
  touch "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
