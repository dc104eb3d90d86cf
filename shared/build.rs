//! The migrations are embedded by `sqlx::migrate!`; a new migration file must rebuild
//! this crate, which cargo cannot know without being told.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
