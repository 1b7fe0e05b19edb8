//! READMEs: CommonMark rendered to HTML with nothing active left in it. Raw HTML in the
//! Markdown is shown as text, and links and images keep only web, mail and relative
//! addresses (no `javascript:`, no `data:`); the renderer escapes all text and
//! attributes.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

pub fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// Web, mail, fragment and relative addresses; anything else becomes `#`.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme_end = lower.find(':');
    let first_slash = lower.find(['/', '?', '#']);
    let relative = match (scheme_end, first_slash) {
        (None, _) => true,
        (Some(c), Some(s)) => s < c,
        (Some(_), None) => false,
    };
    let allowed = lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("mailto:")
        || (relative && !lower.starts_with("//"));
    if allowed { url } else { CowStr::Borrowed("#") }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn markup_and_script_addresses_stay_inert() {
        let html = render(
            "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) [y](https://example.com/a) <img src=x onerror=alert(1)> ![i](data:image/png;base64,AA)",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<img src=\"x\""), "{html}");
        assert!(html.contains("href=\"#\""), "{html}");
        assert!(html.contains("href=\"https://example.com/a\""), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("src=\"data:"), "{html}");
    }
}
