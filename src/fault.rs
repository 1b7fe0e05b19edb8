//! Fault injection for the crash tests, in debug builds only (release builds compile it
//! to nothing). `GATEHOUSE_FAULT` lists points, separated by commas: at `<point>` the
//! process aborts (as `kill -9` would); at `fail:<point>` the code there fails as it
//! would on an error, to reach recovery paths.

#[cfg(debug_assertions)]
fn configured(entry: &str) -> bool {
    static FAULT: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FAULT
        .get_or_init(|| {
            std::env::var("GATEHOUSE_FAULT")
                .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect())
                .unwrap_or_default()
        })
        .iter()
        .any(|p| p == entry)
}

/// Abort here if this is a configured fault point (debug builds only).
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    if configured(name) {
        eprintln!("gatehouse: fault injected at {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Whether the code at `name` should fail (`fail:<name>` configured; debug builds only).
pub fn fails(name: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        configured(&format!("fail:{name}"))
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        false
    }
}
