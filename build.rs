// `sqlx::migrate!` embeds the migrations at compile time, but Cargo does not know the macro
// reads them: without this, a new migration is missing from the binary until some source
// file changes (as sqlx's own `sqlx migrate build-script` advises).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
