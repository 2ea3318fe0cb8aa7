#!/usr/bin/env bash
# The plan diff of one stack for a pull request, run by .github/workflows/pr.yml (job
# `plan-diff`) in the pull request's checkout (with history). Offline: no Pulumi CLI, no AWS
# account, no secret (docs/plan.md, "In pull requests").
#
#   plan-diff.sh STACK
#
# 1. the base commit (BASE_SHA) in a temporary `git worktree`; with no Pulumi.STACK.yaml there
#    the stack is new: the plain plan of the checkout is the comment (mode new-stack);
# 2. the base planned to JSON by the base's own tools (`--stack`: the form older versions of
#    tools.plan accept); if that fails, the plain plan with the base's error (mode base-failed);
# 3. the checkout planned `--against` it (mode diff; exit status 0, 3 data-affecting, 2 bad input);
# 4. the comment body (tools.pr_plan_comment body).
#
# Environment: BASE_SHA (required), HEAD_SHA, RUN_URL, APPROVAL_LABEL, OUT_DIR (default
# $RUNNER_TEMP/plan-diff). Writes OUT_DIR/STACK.diff (also printed) and OUT_DIR/STACK.md, and to
# $GITHUB_OUTPUT: mode, exit-code, diff, body. Exit status 0 once the body is written (the gate
# step judges the result); 1 when it cannot run (no base commit).
set -euo pipefail

stack=${1:?usage: plan-diff.sh STACK}
[ -n "${BASE_SHA:-}" ] || { echo "::error::BASE_SHA (the pull request's base commit) is not set" >&2; exit 1; }
out=${OUT_DIR:-${RUNNER_TEMP:?RUNNER_TEMP or OUT_DIR must be set}/plan-diff}
mkdir -p "$out"
out=$(cd "$out" && pwd)
base="$out/base-$stack"
diff="$out/$stack.diff"

git rev-parse --verify --quiet "$BASE_SHA^{commit}" >/dev/null \
  || { echo "::error::base commit $BASE_SHA is not in the checkout (check out with fetch-depth: 0)" >&2; exit 1; }
git worktree add --quiet --detach "$base" "$BASE_SHA"
trap 'git worktree remove --force "$base" 2>/dev/null || true' EXIT

code=0
if [ ! -f "$base/Pulumi.$stack.yaml" ]; then
  mode=new-stack
  python -m tools.plan --stack "$stack" >"$diff" 2>&1 || code=$?
elif (cd "$base" && python -m tools.plan --stack "$stack" --json) >"$out/$stack.base.json" 2>"$out/$stack.base.err"; then
  mode=diff
  python -m tools.plan --stack "$stack" --against "$out/$stack.base.json" >"$diff" 2>&1 || code=$?
else
  mode=base-failed
  {
    echo "The base commit ${BASE_SHA:0:12} could not be planned:"
    tail -n 20 "$out/$stack.base.err"
    echo
  } >"$diff"
  python -m tools.plan --stack "$stack" >>"$diff" 2>&1 || code=$?
fi
cat "$diff"

python -m tools.pr_plan_comment body --stack "$stack" --mode "$mode" --exit-code "$code" \
  --diff "$diff" --label "${APPROVAL_LABEL:-data-change-approved}" \
  --base-sha "$BASE_SHA" --head-sha "${HEAD_SHA:-}" --run-url "${RUN_URL:-}" >"$out/$stack.md"

{
  echo "mode=$mode"
  echo "exit-code=$code"
  echo "diff=$diff"
  echo "body=$out/$stack.md"
} >>"${GITHUB_OUTPUT:-/dev/null}"
