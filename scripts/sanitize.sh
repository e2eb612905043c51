#!/usr/bin/env bash
# Builds aigc_engine._core with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# the tests that exercise the C++ core against it.
#
#   bash scripts/sanitize.sh [pytest args...]      (default: the core, sampling and ngram tests)
#
# It uses its own virtual environment (.venv-asan) without aigc-engine installed, and a
# package tree in build-asan/site that maps plugins/ to aigc_engine/plugins as the wheel does,
# with a dist-info carrying the entry points. Leak detection is off: CPython itself
# keeps allocations alive at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$root/.venv-asan
build=$root/build-asan
site=$build/site

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -c constraints.txt numpy pluggy click tqdm pillow onnxruntime \
    pybind11 pytest
fi
py=$venv/bin/python
cmake -S . -B "$build" -G Ninja -DAIGC_SANITIZE=ON -DAIGC_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython_EXECUTABLE="$py" \
  -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" -DSKBUILD_PROJECT_VERSION=0.1.0 >/dev/null
cmake --build "$build" --target _core

rm -rf "$site" && mkdir -p "$site/aigc_engine"
for item in aigc_engine/*; do
  # aigc_engine/plugins (the package's __init__) is replaced by the wheel's mapping below.
  [ "$(basename "$item")" = plugins ] && continue
  ln -s "$root/$item" "$site/aigc_engine/"
done
ln -s "$root/plugins" "$site/aigc_engine/plugins"
cp "$build"/_core*.so "$site/aigc_engine/"
info=$site/aigc_engine-0.1.0.dist-info
mkdir -p "$info"
printf 'Metadata-Version: 2.1\nName: aigc-engine\nVersion: 0.1.0\n' > "$info/METADATA"
"$py" - "$info/entry_points.txt" <<'PY'
import sys, tomllib
eps = tomllib.load(open("pyproject.toml", "rb"))["project"]["entry-points"]["aigc_engine"]
open(sys.argv[1], "w").write("[aigc_engine]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
PY

asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
if [ "$#" -eq 0 ]; then
  set -- tests/core tests/test_sampling.py tests/test_ngram_plugin.py -q -p no:cacheprovider
fi
cd "$site"
LD_PRELOAD="$asan $ubsan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 PYTHONPATH="$site" \
  "$py" -m pytest --rootdir "$root" -c "$root/pyproject.toml" \
  "${@/#tests/$root/tests}"
