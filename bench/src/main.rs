//! The benchmark is driven by `bench/run.py`; the workload generator is the `workload` binary.

fn main() {
    eprintln!("backup-fs-bench: run `python3 bench/run.py --help` (see bench/README.md)");
}
