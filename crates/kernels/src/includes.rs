//! The one textual `#include` of the kernel sources: a line `#include "name"` naming a header
//! under `kernels/` is replaced by the header's text, so NVRTC, the disk cache's key and the
//! emulated GPU (whose build script uses this file too) all see the same source.

/// `body` with every line `#include "name"` for which `header(name)` gives a text replaced by
/// that text (ending in a newline); every other line kept as it is.
pub(crate) fn expand_includes(body: &str, header: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        let named = line
            .trim()
            .strip_prefix("#include")
            .map(|rest| rest.trim().trim_matches('"'));
        match named.and_then(&header) {
            Some(text) => {
                out.push_str(&text);
                if !text.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => out.push_str(line),
        }
    }
    out
}
