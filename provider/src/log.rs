//! Log lines for Terraform: hclog's JSON shape on stderr, so that `TF_LOG=INFO` shows the
//! provider's progress at its real level. stdout belongs to the plugin handshake.

/// Log levels hclog understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Detail for debugging the provider itself.
    Debug,
    /// Progress a user watching `TF_LOG=INFO` wants to see.
    Info,
    /// Something the user should know about but that does not fail the run.
    Warn,
    /// A failure.
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Writes one hclog JSON line to stderr.
pub fn log(level: Level, message: &str) {
    // go-plugin parses `@timestamp` with Go's layout "2006-01-02T15:04:05.000000Z07:00"
    // (exactly six fractional digits); any other form demotes the line to a raw DEBUG one.
    let t = time::OffsetDateTime::now_utc();
    let now = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    );
    let line = serde_json::json!({
        "@level": level.as_str(),
        "@message": message,
        "@module": "provider.immutable",
        "@timestamp": now,
    });
    // eprintln! (not a raw stderr handle) so that test harnesses capture it.
    eprintln!("{line}");
}

/// INFO line.
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message.as_ref());
}

/// WARN line.
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message.as_ref());
}

/// DEBUG line.
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message.as_ref());
}

/// Warnings for the user of one release (by name), raised deep in the engine or an adapter
/// (a history trimmed to fit, a rollback target gone): logged at once, and kept until the
/// Terraform layer turns them into warning diagnostics of that release's operation.
static NOTICES: std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Logs a warning and keeps it for release `name`'s diagnostics (once per text).
pub fn notice(name: &str, message: impl Into<String>) {
    let message = message.into();
    warn(format!("release {name}: {message}"));
    if let Ok(mut n) = NOTICES.lock() {
        let list = n.entry(name.to_string()).or_default();
        if !list.contains(&message) {
            list.push(message);
        }
    }
}

/// Takes the warnings kept for release `name`.
pub fn take_notices(name: &str) -> Vec<String> {
    NOTICES
        .lock()
        .ok()
        .and_then(|mut n| n.remove(name))
        .unwrap_or_default()
}
