//! The benchmark program (being built).

fn main() {
    println!("kqring-bench: no workloads yet");
}
