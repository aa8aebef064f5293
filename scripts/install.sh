#!/usr/bin/env bash
# Install actrec-batch for one role, pinned by constraints.txt. The one install recipe: `make install`
# (CI) runs it as `dev`, the Ray node image (infra/docker/Dockerfile.ray) as `worker`, and managed
# Airflow's requirements file (infra/airflow/requirements.txt) is its `airflow` role written out.
#
#   scripts/install.sh ROLE [WHAT]         install ROLE's extra of WHAT into $PYTHON's environment
#   scripts/install.sh ROLE --requirements  print ROLE's requirements file (pins from constraints.txt)
#
# ROLE: airflow (scheduler, triggerer, workers: no Ray, torch), worker (Ray nodes), dev (everything
# and the test tools). WHAT: a built wheel (images) or a source folder; default: this checkout,
# editable for dev. PYTHON (default python3) is the interpreter whose environment gets it;
# ACTREC_CONSTRAINTS overrides the constraints file. pip resolves nothing that constraints.txt does
# not pin to one version.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
constraints=${ACTREC_CONSTRAINTS:-$here/constraints.txt}
usage() { echo "usage: scripts/install.sh airflow|worker|dev [WHEEL_OR_FOLDER | --requirements]" >&2; exit 2; }

role=${1:-}
case "$role" in airflow | worker | dev) ;; *) usage ;; esac
what=${2:-}
[[ -f $constraints ]] || { echo "install.sh: no constraints file $constraints (ACTREC_CONSTRAINTS)" >&2; exit 2; }

if [[ $what == --requirements ]]; then
  # ROLE's direct requirements (the base and the extra, from pyproject.toml), each pinned to the
  # version constraints.txt holds, after the constraints line and the wheel MWAA installs from
  # plugins.zip. tests/test_packaging.py checks the committed file against this output.
  exec "$PYTHON" - "$role" "$here/pyproject.toml" "$constraints" <<'EOF'
import re, sys, tomllib

role, pyproject, constraints = sys.argv[1:]
project = tomllib.load(open(pyproject, "rb"))["project"]
pins = {}
for line in open(constraints):
    name, _, version = line.strip().partition("==")
    if version:
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
print(f"# Managed Airflow (MWAA) requirements for actrec-batch[{role}] {project['version']}.")
print(f"# Generated: scripts/install.sh {role} --requirements > infra/airflow/requirements.txt")
print("# Upload constraints.txt and the built wheel in plugins.zip (see infra/airflow/README.md).")
print('--constraint "/usr/local/airflow/plugins/constraints.txt"')
print(f"actrec-batch[{role}] @ file:///usr/local/airflow/plugins/actrec_batch-{project['version']}-py3-none-any.whl")
names = {}
for req in [*project["dependencies"], *project["optional-dependencies"][role]]:
    m = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?", req)
    names[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2) or ""
missing = sorted(n for n in names if n not in pins)
if missing:
    sys.exit(f"install.sh: constraints.txt pins no version of {', '.join(missing)}")
for name in sorted(names):
    print(f"{name}{names[name]}=={pins[name]}")
EOF
fi

if [[ -z $what ]]; then
  [[ $role == dev ]] && target=(-e "$here[dev]") || target=("$here[$role]")
else
  target=("$what[$role]")
fi
echo "==> installing actrec-batch[$role] from ${what:-$here} into $("$PYTHON" -c 'import sys; print(sys.prefix)') (pinned by $constraints)"
start=$(date +%s)
set -o pipefail
"$PYTHON" -m pip install -q --disable-pip-version-check -c "$constraints" "${target[@]}" 2>&1 \
  | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
echo "==> install took $(($(date +%s) - start)) s"
