//! Standard output and the error line. Everything the commands print goes through [`print`],
//! which never panics: a closed pipe (`curvature analyze M | head -1`) ends the run quietly with
//! exit code 0, and any other write error (a full disk) is an error like the others. An error
//! is one line, `error: ...`, of at most [`ERROR_LINE_BYTES`] bytes.

use std::io::Write;

use curvature::nn::bounded_text;

/// The most bytes of the error line, `error: ` and the line break included.
pub const ERROR_LINE_BYTES: usize = 300;

/// Why a command stopped.
#[derive(Debug)]
pub enum Failure {
    /// An error to report.
    Error(String),
    /// Standard output was closed by its reader: stop quietly.
    StdoutClosed,
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Error(message)
    }
}

/// Writes `text` to standard output (and flushes it).
pub fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::StdoutClosed),
        Err(e) => Err(Failure::Error(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// `error: {message}` as one line: line breaks and runs of white space become one space,
/// other control characters are escaped, and the line is cut (with "…") to at most
/// [`ERROR_LINE_BYTES`] bytes including its line break.
pub fn error_line(message: &str) -> String {
    const PREFIX: &str = "error: ";
    let flat = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let budget = ERROR_LINE_BYTES - PREFIX.len() - 1;
    format!("{PREFIX}{}\n", bounded_text(&flat, budget))
}

/// Writes the error line to standard error; a closed standard error is ignored.
pub fn report(message: &str) {
    let _ = std::io::stderr().write_all(error_line(message).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_bounded_line() {
        assert_eq!(error_line("a\nb\t\tc \x1b[2J"), "error: a b c \\x1b[2J\n");
        let long = error_line(&"é".repeat(1000));
        assert!(long.len() <= ERROR_LINE_BYTES, "{}", long.len());
        assert!(long.len() >= ERROR_LINE_BYTES - 4, "{}", long.len());
        assert!(long.ends_with("…\n"));
        assert_eq!(long.lines().count(), 1);
    }
}
