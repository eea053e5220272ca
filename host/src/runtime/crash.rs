//! What a guest printed on stderr when it crashed, reduced to the message an operator reads
//! first: a Rust panic, an uncaught Python exception, an uncaught JavaScript error. The
//! whole output (backtrace, traceback, stack) stays in the event's log.

/// The message of the crash the guest reported in `log`, if it reported one we know.
///
/// Python comes first: componentize-py's runtime, written in Rust, follows the traceback
/// with a panic of its own ("Python function threw an unexpected exception") that says
/// nothing about the cause.
pub(super) fn panic_message(log: &str) -> Option<String> {
    python_exception(log)
        .or_else(|| javascript_error(log))
        .or_else(|| rust_panic(log))
}

/// The exception line that ends the last traceback, `module.Name: message`, with the
/// lines of a message that spans several.
///
/// ```text
/// Traceback (most recent call last):
///   File "/0/app.py", line 44, in process
///     raise ScriptedPanic(...)
/// app.ScriptedPanic: scripted panic for 'INT-1'
/// ```
///
/// With chained exceptions (`During handling of the above exception, ...`) the last
/// traceback is the one of the exception that escaped.
fn python_exception(log: &str) -> Option<String> {
    const HEADER: &str = "Traceback (most recent call last):";
    let start = log
        .match_indices(HEADER)
        .filter(|(at, _)| *at == 0 || log[..*at].ends_with('\n'))
        .last()?
        .0;
    let mut lines = log[start + HEADER.len()..].lines().skip(1);
    // Frames and their source lines are indented; the exception line is not.
    let first = lines.find(|line| !line.starts_with(' '))?;
    let message: Vec<&str> = std::iter::once(first)
        .chain(lines.take_while(|line| !line.trim().is_empty()))
        .collect();
    Some(message.join("\n").trim().to_string()).filter(|m| !m.is_empty())
}

/// `NAME: message` from the `Uncaught NAME: message` line that the JavaScript helpers
/// (`crash` in guest/js/lib/twinsync-helpers.js) print before they trap.
fn javascript_error(log: &str) -> Option<String> {
    log.lines()
        .find_map(|line| line.strip_prefix("Uncaught "))
        .map(|message| message.trim().to_string())
        .filter(|message| !message.is_empty())
}

/// The message of a Rust panic: the lines after `panicked at FILE:LINE:COL:`.
fn rust_panic(log: &str) -> Option<String> {
    let start = log.find("panicked at")?;
    let after = &log[start..];
    let body = after.split_once('\n').map_or("", |(_, rest)| rest);
    let message: Vec<&str> = body
        .lines()
        .take_while(|line| !line.starts_with("note: run with"))
        .collect();
    let message = message.join("\n").trim().to_string();
    Some(if message.is_empty() {
        after.lines().next().unwrap_or("panic").to_string()
    } else {
        message
    })
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    // Captured from the `scripted` test processors ("panic" behaviour) with
    // `twinsync plugin check --json --sample ISSUE.json FILE.wasm`.

    const RUST: &str = "\nthread '<unnamed>' (1) panicked at guest/test-processors/scripted/src/lib.rs:29:24:\n\
        scripted panic for Some(\"INT-1\")\n\
        note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";

    /// componentize-py 0.25.1.
    const PYTHON: &str = "Traceback (most recent call last):\n  File \"/0/app.py\", line 44, in process\n\
        app.ScriptedPanic: scripted panic for 'INT-1'\n\n\
        thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n\
        Python function threw an unexpected exception\n\
        note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";

    /// componentize-js 0.23.0 with the helpers of guest/js/lib.
    const JAVASCRIPT: &str = "Uncaught ScriptedPanic: scripted panic for \"INT-1\"\n\
        scripted panic for \"INT-1\"\nStack:\n  ScriptedPanic@scripted.js:27:5\n  \
        incoming@scripted.js:38:15\n  guardedProcess@lib/twinsync-helpers.js:124:14\n  \
        export_incoming_0_1_0$process@/tmp/e191ff392778/sources/initializer.js:1570:30\n\n\
        Redirecting call to abort() to mozalloc_abort\n\n";

    #[test]
    fn a_rust_panic_is_its_message() {
        assert_eq!(
            panic_message(RUST).as_deref(),
            Some("scripted panic for Some(\"INT-1\")")
        );
    }

    #[test]
    fn a_python_exception_is_the_last_line_of_its_traceback_not_the_runtime_panic() {
        assert_eq!(
            panic_message(PYTHON).as_deref(),
            Some("app.ScriptedPanic: scripted panic for 'INT-1'")
        );
    }

    #[test]
    fn a_chained_python_exception_is_the_one_that_escaped() {
        let log = "Traceback (most recent call last):\n  File \"/0/app.py\", line 9, in lookup\n    \
            return table[key]\n           ~~~~~^^^^^\nKeyError: 'Blocker'\n\n\
            During handling of the above exception, another exception occurred:\n\n\
            Traceback (most recent call last):\n  File \"/0/app.py\", line 12, in process\n    \
            raise ValueError(f\"unknown priority {key!r}\\nmap it first\")\n\
            ValueError: unknown priority 'Blocker'\nmap it first\n\n\
            thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\n";
        assert_eq!(
            panic_message(log).as_deref(),
            Some("ValueError: unknown priority 'Blocker'\nmap it first")
        );
    }

    #[test]
    fn a_javascript_error_is_its_name_and_message() {
        assert_eq!(
            panic_message(JAVASCRIPT).as_deref(),
            Some("ScriptedPanic: scripted panic for \"INT-1\"")
        );
    }

    #[test]
    fn output_without_a_crash_report_has_no_message() {
        assert_eq!(panic_message(""), None);
        assert_eq!(panic_message("[info] mapped 3 fields\nall good\n"), None);
        // Quoting the header inside a line is not a traceback.
        assert_eq!(
            panic_message("see 'Traceback (most recent call last):' in the docs\n"),
            None
        );
    }
}
