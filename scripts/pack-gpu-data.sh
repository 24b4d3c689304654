#!/usr/bin/env bash
# Copies ../shared/data (the tests' reference data, ~18 MB) into .gpu-data/ (git-ignored) so that a
# `device` call can carry it: the GPU machine receives only this checkout. Run from the repository root.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qx '/.gpu-data/' .git/info/exclude 2>/dev/null || echo '/.gpu-data/' >> .git/info/exclude
rm -rf .gpu-data
cp -r ../shared/data .gpu-data
chmod -R u+w .gpu-data
du -sh .gpu-data
