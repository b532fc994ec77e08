# setup.sh: the common start of the side-by-side benchmarks (sourced by compare.sh and
# gemm-shapes.sh, from the repository root): repetitions and threads from the
# environment (REPS, default 3; THREADS, default all cores), the output folder
# bench/out, the reference's Python environment (scripts/ref-venv.sh), the Debian
# packages, and a Release build of sevo.
reps=${REPS:-3}
threads=${THREADS:-$(nproc)}
out=bench/out
mkdir -p "$out"
python=$(scripts/ref-venv.sh)
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target sevo >/dev/null
