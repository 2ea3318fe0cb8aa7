#!/usr/bin/env bash
# Log in to the Pulumi backend and select a stack, from the repository's variables and secrets.
# Run by .github/workflows/pr.yml (preview) and deploy.yml (deploy), after the Pulumi CLI is
# installed and AWS credentials are configured (an S3 backend and an awskms:// secrets provider
# need them). docs/runbook.md ("CI and deploy: backend, secrets provider, stacks") explains them.
#
#   pulumi-stack.sh deploy STACK    select STACK; a stack that does not exist yet is created with
#                                   PULUMI_SECRETS_PROVIDER (the first deploy creates it)
#   pulumi-stack.sh preview STACK   select STACK; a stack that does not exist yet is not created:
#                                   writes exists=false to $GITHUB_OUTPUT (preview skipped)
#
# Environment:
#   PULUMI_BACKEND_URL       repository variable: a self-managed backend (s3://bucket/prefix?region=..)
#   PULUMI_ACCESS_TOKEN      repository secret: Pulumi Cloud (used when PULUMI_BACKEND_URL is empty)
#   PULUMI_SECRETS_PROVIDER  repository variable: awskms://alias/<name>?region=<region> (needed with
#                            a self-managed backend; Pulumi Cloud's own provider is the default)
# Exit status: 0 selected (or, preview, absent), 1 a variable is missing or the backend failed.
set -euo pipefail

usage="usage: pulumi-stack.sh deploy|preview STACK"
mode=${1:?$usage}
stack=${2:?$usage}
backend=${PULUMI_BACKEND_URL:-}
token=${PULUMI_ACCESS_TOKEN:-}
provider=${PULUMI_SECRETS_PROVIDER:-}

fail() {
  echo "::error::$*" >&2
  exit 1
}

case "$mode" in deploy | preview) ;; *) fail "$usage" ;; esac

case "$provider" in
  "" | awskms://* | azurekeyvault://* | gcpkms://* | hashivault://*) ;;
  *) fail "PULUMI_SECRETS_PROVIDER must be a KMS URL such as awskms://alias/dmsbus-pulumi?region=eu-west-1, found '$provider' (the passphrase provider needs a passphrase CI does not hold)" ;;
esac

if [ -n "$backend" ]; then
  [ -n "$provider" ] || fail "the repository variable PULUMI_SECRETS_PROVIDER is not set: the self-managed backend $backend needs a KMS secrets provider, e.g. awskms://alias/dmsbus-pulumi?region=eu-west-1"
  pulumi login "$backend"
elif [ -n "$token" ]; then
  pulumi login # Pulumi Cloud, with PULUMI_ACCESS_TOKEN from the environment
else
  fail "no Pulumi backend: set the repository variable PULUMI_BACKEND_URL (self-managed, e.g. s3://<bucket>/dms-event-bus?region=eu-west-1) or the repository secret PULUMI_ACCESS_TOKEN (Pulumi Cloud)"
fi

# The stack exists if the backend lists it (Pulumi Cloud lists org/project/stack names).
stacks=$(pulumi stack ls --json)
exists=$(STACKS="$stacks" python3 -c '
import json, os, sys
names = [s["name"] for s in json.loads(os.environ["STACKS"] or "[]")]
print(str(any(n == sys.argv[1] or n.endswith("/" + sys.argv[1]) for n in names)).lower())
' "$stack")

if [ "$exists" = true ]; then
  pulumi stack select "$stack"
elif [ "$mode" = deploy ]; then
  echo "::notice::stack $stack does not exist yet: creating it (secrets provider ${provider:-default})"
  pulumi stack select --create --secrets-provider "${provider:-default}" "$stack"
else
  echo "::notice::stack $stack does not exist yet: the first deploy creates it; no preview"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  if [ "$exists" = true ] || [ "$mode" = deploy ]; then
    echo "exists=true" >>"$GITHUB_OUTPUT"
  else
    echo "exists=false" >>"$GITHUB_OUTPUT"
  fi
fi
