//! Recompile when the committed query data changes: the `sqlx::query!` macros read `.sqlx/`,
//! which cargo cannot see, so a regenerated `.sqlx/` would otherwise leave the old expansion.
fn main() {
    println!("cargo::rerun-if-changed=../.sqlx");
}
