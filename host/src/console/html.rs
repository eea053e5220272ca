//! HTML building blocks: escaping, the page frame, forms with their CSRF field, paging,
//! and the security headers every console response gets.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{Html, Response};

/// Nothing but the console's own stylesheet, script and forms; no inline script or style
/// (the SVG charts use presentation attributes), no frames.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Text for HTML: element content and quoted attribute values alike.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value for a URL query: percent-encoded, then fit for an attribute.
pub fn url(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn frame(title: &str, nav: &str, body: &str, refresh: bool) -> Html<String> {
    let refresh = if refresh { " data-refresh=\"15\"" } else { "" };
    Html(format!(
        "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>{title} · twinsync</title>
<link rel=\"stylesheet\" href=\"/console/assets/console.css\">
<script src=\"/console/assets/console.js\" defer></script>
</head><body{refresh}>
<header><a class=\"brand\" href=\"/console\">twinsync</a>{nav}</header>
<main><h1>{title}</h1>
{body}
</main></body></html>",
        title = esc(title),
    ))
}

/// A page without navigation (login, refusals).
pub fn bare(title: &str, body: &str) -> Html<String> {
    frame(title, "", body, false)
}

/// The console's pages, by path and name, for the navigation.
const NAV: &[(&str, &str)] = &[
    ("/console", "Overview"),
    ("/console/queue", "Queue"),
    ("/console/errors", "Errors"),
    ("/console/twins", "Twins"),
    ("/console/conflicts", "Conflicts"),
    ("/console/plugins", "Plugins"),
];

/// A page of the console: navigation (with `active` marked), a logout button, `body`.
pub fn page(title: &str, active: &str, csrf: &str, body: &str) -> Html<String> {
    let links: String = NAV
        .iter()
        .map(|(path, name)| {
            let current = if *path == active {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!("<li><a href=\"{path}\"{current}>{name}</a></li>")
        })
        .collect();
    let nav = format!(
        "<nav aria-label=\"Console\"><ul>{links}</ul></nav>{}",
        post_form("/console/logout", csrf, "Log out", &[], "logout")
    );
    frame(title, &nav, body, active == "/console")
}

/// A form that POSTs to `action` with the CSRF token and `fields` hidden, as one button.
pub fn post_form(
    action: &str,
    csrf: &str,
    label: &str,
    fields: &[(&str, &str)],
    class: &str,
) -> String {
    let hidden: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(name),
                esc(value)
            )
        })
        .collect();
    format!(
        "<form method=\"post\" action=\"{}\" class=\"{class}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{hidden}<button type=\"submit\">{}</button></form>",
        esc(action),
        esc(csrf),
        esc(label)
    )
}

/// Rows shown per page of every list.
pub const PAGE_SIZE: usize = 50;

/// Links to the previous and next page. `base` is the list's URL with its query (without
/// `page`), `page` counts from 0.
pub fn pager(base: &str, page: usize, has_more: bool) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut links = Vec::new();
    if page > 0 {
        links.push(format!(
            "<a rel=\"prev\" href=\"{}\">Previous page</a>",
            esc(&format!("{base}{sep}page={}", page - 1))
        ));
    }
    links.push(format!("<span>Page {}</span>", page + 1));
    if has_more {
        links.push(format!(
            "<a rel=\"next\" href=\"{}\">Next page</a>",
            esc(&format!("{base}{sep}page={}", page + 1))
        ));
    }
    format!(
        "<nav class=\"pager\" aria-label=\"Pages\">{}</nav>",
        links.join(" ")
    )
}

/// A time for people: RFC 3339, with how long ago.
pub fn time(ms: i64, now_ms: i64) -> String {
    let at = crate::clock::rfc3339(crate::clock::from_millis(ms));
    let ago = (now_ms - ms).max(0) / 1000;
    let ago = match ago {
        0..60 => format!("{ago} s ago"),
        60..3600 => format!("{} min ago", ago / 60),
        3600..86400 => format!("{} h ago", ago / 3600),
        _ => format!("{} days ago", ago / 86400),
    };
    format!("<time datetime=\"{at}\" title=\"{at}\">{ago}</time>")
}

/// Long text in a `<pre>` (focusable, so that keyboards can scroll it): the first `shown` bytes, the whole in an expandable block.
pub fn long_text(text: &str, shown: usize) -> String {
    if text.len() <= shown {
        return format!("<pre tabindex=\"0\">{}</pre>", esc(text));
    }
    let mut end = shown;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "<pre tabindex=\"0\">{}…</pre><details><summary>Show all ({} bytes)</summary><pre tabindex=\"0\">{}</pre></details>",
        esc(&text[..end]),
        text.len(),
        esc(text)
    )
}

/// A table with a header row; `rows` are already HTML.
pub fn table(caption: &str, headers: &[&str], rows: &[String]) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}: none.</p>", esc(caption));
    }
    let head: String = headers
        .iter()
        .map(|h| format!("<th scope=\"col\">{}</th>", esc(h)))
        .collect();
    format!(
        "<table><caption>{}</caption><thead><tr>{head}</tr></thead><tbody>{}</tbody></table>",
        esc(caption),
        rows.concat()
    )
}

/// One table row from cells that are already HTML.
pub fn row(cells: &[String]) -> String {
    let cells: String = cells.iter().map(|c| format!("<td>{c}</td>")).collect();
    format!("<tr>{cells}</tr>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x' & \"y\")</script>"),
            "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(url("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn long_text_is_cut_and_expandable() {
        let shown = long_text("<b>bold</b> and more", 3);
        assert!(
            shown.starts_with("<pre tabindex=\"0\">&lt;b&gt;…</pre><details>"),
            "{shown}"
        );
        assert!(shown.contains("&lt;b&gt;bold&lt;/b&gt; and more"));
        assert_eq!(long_text("ok", 3), "<pre tabindex=\"0\">ok</pre>");
    }
}
