#!/usr/bin/env bash
# `make infra-check` (and `make test`): infra/terraform is formatted, initialises offline, validates,
# and passes checkov with no failed check (every skip is a `#checkov:skip=` with its reason, in the code).
#
#   scripts/infra_check.sh                   fmt + init + validate + test + checkov
#   scripts/infra_check.sh --terraform-only  fmt + init + validate + test (tests/test_terraform.py)
#
# Terraform runs on a temporary copy (infra/terraform, infra/airflow, dags/), so .terraform/ never
# lands in the repository. The hashicorp/aws provider comes from a local filesystem mirror when the
# machine has one (ACTREC_TF_MIRROR, /opt/tf-plugins, or any folder holding registry.terraform.io
# within 4 levels of /), else from the registry. checkov lives in its own venv
# (.actrec/checkov-venv, pinned by infra/checkov-requirements.txt): its pins clash with constraints.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
terraform_only=0
case "${1:-}" in
  "") ;;
  --terraform-only) terraform_only=1 ;;
  *) echo "usage: scripts/infra_check.sh [--terraform-only]" >&2; exit 2 ;;
esac

command -v terraform > /dev/null || { echo "infra_check: terraform is not installed" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/infra"
cp -r infra/terraform infra/airflow "$work/infra/"
cp -r dags "$work/"
tf="$work/infra/terraform"
rm -rf "$tf/.terraform" "$tf"/*.tfstate* "$tf"/*_override.tf

export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_INPUT=0
# A CLI config of the caller wins, unless it names a file that does not exist.
if [[ -z ${TF_CLI_CONFIG_FILE:-} || ! -f $TF_CLI_CONFIG_FILE ]]; then
  unset TF_CLI_CONFIG_FILE
  mirror=${ACTREC_TF_MIRROR:-}
  if [[ -z $mirror && -d /opt/tf-plugins/registry.terraform.io ]]; then mirror=/opt/tf-plugins; fi
  if [[ -z $mirror ]]; then
    hit=$(find / -maxdepth 4 -type d -name registry.terraform.io \
      -not -path '/proc/*' -not -path '/sys/*' -not -path '*/.terraform/*' 2> /dev/null | head -1 || true)
    [[ -n $hit ]] && mirror=$(dirname "$hit")
  fi
  if [[ -n $mirror ]]; then
    printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' "$mirror" > "$work/cli.tfrc"
    export TF_CLI_CONFIG_FILE="$work/cli.tfrc"
    echo "==> terraform providers from the mirror $mirror"
  fi
fi

echo "==> terraform fmt -check -recursive"
terraform -chdir="$tf" fmt -check -recursive -diff -no-color
echo "==> terraform init -backend=false"
terraform -chdir="$tf" init -backend=false -input=false -no-color > "$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }
echo "==> terraform validate"
terraform -chdir="$tf" validate -no-color
echo "==> terraform test (tests/*.tftest.hcl: variable validations, the provider mocked)"
terraform -chdir="$tf" test -no-color > "$work/test.log" 2>&1 || { cat "$work/test.log" >&2; exit 1; }
tail -1 "$work/test.log"
[[ $terraform_only == 1 ]] && exit 0

venv="$here/.actrec/checkov-venv"
reqs="$here/infra/checkov-requirements.txt"
if ! cmp -s "$reqs" "$venv/.requirements.txt" 2> /dev/null; then
  echo "==> installing checkov into $venv (pinned by infra/checkov-requirements.txt)"
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs" 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  cp "$reqs" "$venv/.requirements.txt"
fi
echo "==> checkov ($("$venv/bin/checkov" --version))"
# Offline: no Bridgecrew platform, no policy download, no external modules.
rm -rf "$tf/.terraform"
(cd "$work" && BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false "$venv/bin/checkov" \
  -d infra/terraform --framework terraform --quiet --compact --skip-download \
  --download-external-modules false)
