//! Crash injection for the crash tests: in debug builds, `GATEHOUSE_FAULT=<point>` makes
//! the process abort (as `kill -9` would) when it reaches that point. Release builds
//! compile it to nothing.

/// Abort here if this is the configured fault point (debug builds only).
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    {
        static FAULT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        if FAULT.get_or_init(|| std::env::var("GATEHOUSE_FAULT").ok()).as_deref() == Some(name) {
            eprintln!("gatehouse: fault injected at {name}: aborting");
            std::process::abort();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}
