# faultline task runner. `just --list` shows the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Install the system tools the demo and tests need (apt), if missing.
deps:
    scripts/install-deps.sh

# The demo: `faultline run scenarios/demo.yaml` in a local lab (needs root): a partition makes
# a stripped service panic, faultline symbolizes the crash offline and flags a goroutine leak.
demo: deps
    scripts/demo.sh

# Build what the scenarios in scenarios/ run (target/demo) without running anything.
demo-build: deps
    scripts/demo-build.sh

# The whole test suite, as CI runs it: format, lints, every test.
test: deps
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings
    # faultline-capture's `tokio` feature builds only with tokio's --cfg tokio_unstable: it is
    # checked with the tokio service that uses it, in that service's own target directory.
    cd tests/targets/tokio-service && cargo fmt --check
    RUSTFLAGS="--cfg tokio_unstable" cargo clippy --manifest-path tests/targets/tokio-service/Cargo.toml --locked --target-dir target/tokio-service -p faultline-capture -p tokio-service --features faultline-capture/tokio -- -D warnings
    cargo test --workspace --locked 2>&1 | tee target/test-output.txt
    awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' target/test-output.txt

# Benchmark symbolization against llvm-symbolizer, binutils addr2line and gimli's addr2line.
bench-symbolize: deps
    scripts/bench-symbolize.sh

# Fuzz every parser of untrusted input for SECONDS each (cargo-fuzz on stable, no sanitizer).
fuzz SECONDS="60":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd fuzz && for target in crash_record elf_identity debug_file dump dump_go_text dump_pprof_debug1 dump_pprof_proto dump_rust_panic dump_tokio_text dump_task_record dump_go_race dump_json_lines symbol_index core_file minidump_file; do mkdir -p "corpus/$target"; seeds=(); [[ -d "seeds/$target" ]] && seeds=("seeds/$target"); cargo fuzz run -s none "$target" "corpus/$target" "${seeds[@]}" -- -max_total_time={{SECONDS}}; done

# Benchmark the core handler on a 1 GiB, 20-thread process's core, and analyze of what it kept.
bench-cores: deps
    scripts/bench-cores.sh

# Benchmark faultline analyze on a 100,000-goroutine Go dump.
bench-dumps: deps
    scripts/bench-dumps.sh

# Benchmark leak tracking against parsing: 1,000 dumps x 10,000 goroutines, memory per 100 dumps.
bench-leaks:
    cargo bench --locked -p faultline-tests --bench leaks

# Benchmark the TUI: frame time and key latency with 10,000 targets and 100,000 tasks in view,
# and memory over 600 one-second rounds of dumps.
bench-tui:
    cargo bench --locked -p faultline-tests --bench tui

# Benchmark faults through the agent (inject/revert latency, idle footprint) and soak it with
# SIGKILLs; needs root (it makes network namespaces).
bench-faults: deps
    cargo build --release --locked -p faultline
    cargo bench --locked -p faultline-tests --bench faults -- --faultline "$PWD/target/release/faultline"
