//! What the integration tests share: a headless Chromium.

use std::path::PathBuf;

/// Flags for a headless Chromium that touches nothing but the page.
pub const HEADLESS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Debian's `chromium` (or another Chromium on PATH).
pub fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| faultline_stack::which(name))
        .expect("a headless Chromium is needed: apt-get install chromium (scripts/setup does)")
}
