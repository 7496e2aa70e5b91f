//! HTML escaping as workerman-chat's PHP did it (`htmlspecialchars` with its defaults, and `nl2br` for
//! content), for pages that insert names and messages as HTML.

use std::borrow::Cow;

/// `& < > " '` as `&amp; &lt; &gt; &quot; &#039;` (an entity already there is escaped again, as PHP's
/// `double_encode` does); everything else, non-ASCII included, as it is.
pub fn html(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'')) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#039;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`html`], then `<br />` before every line break (`\r\n`, `\n\r`, `\n` or `\r`), which stays: PHP's
/// `nl2br(htmlspecialchars(content))`.
pub fn content(text: &str) -> Cow<'_, str> {
    let escaped = html(text);
    if !escaped.contains(['\n', '\r']) {
        return escaped;
    }
    let mut out = String::with_capacity(escaped.len() + 32);
    let mut rest = &*escaped;
    while let Some(at) = rest.find(['\n', '\r']) {
        out.push_str(&rest[..at]);
        out.push_str("<br />");
        let b = rest.as_bytes();
        let pair = matches!((b[at], b.get(at + 1)), (b'\r', Some(b'\n')) | (b'\n', Some(b'\r')));
        let end = at + if pair { 2 } else { 1 };
        out.push_str(&rest[at..end]);
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_php() {
        assert_eq!(
            html(r#"<img src=x onerror="alert('1')">"#),
            "&lt;img src=x onerror=&quot;alert(&#039;1&#039;)&quot;&gt;"
        );
        assert_eq!(html("a & b"), "a &amp; b");
        assert_eq!(html("&amp;"), "&amp;amp;", "an entity is escaped again");
        assert_eq!(html("猪猪 Zoë 👍"), "猪猪 Zoë 👍");
        assert!(matches!(html("plain"), Cow::Borrowed(_)));
        assert_eq!(content("a\nb"), "a<br />\nb");
        assert_eq!(content("a\r\nb\n\rc\rd"), "a<br />\r\nb<br />\n\rc<br />\rd");
        assert_eq!(content("<b>\n\n"), "&lt;b&gt;<br />\n<br />\n");
        assert!(matches!(content("one line"), Cow::Borrowed(_)));
    }
}
