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

/// The length of [`content`]`(text)`, counted without building it.
pub fn content_len(text: &str) -> usize {
    let b = text.as_bytes();
    let mut len = 0;
    let mut i = 0;
    while i < b.len() {
        len += match b[i] {
            b'&' => 5,
            b'<' | b'>' => 4,
            b'"' | b'\'' => 6,
            b'\n' | b'\r' => {
                // A pair of different line-break bytes is one break: one `<br />` before both.
                if matches!((b[i], b.get(i + 1)), (b'\r', Some(b'\n')) | (b'\n', Some(b'\r'))) {
                    i += 1;
                    8
                } else {
                    7
                }
            }
            _ => 1,
        };
        i += 1;
    }
    len
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

    proptest::proptest! {
        #[test]
        fn content_len_is_the_escaped_length(text in "[a-z&<>\"'\r\n猪 ]{0,40}") {
            proptest::prop_assert_eq!(content_len(&text), content(&text).len());
        }
    }

    #[test]
    fn content_len_of_apostrophes_and_breaks() {
        assert_eq!(content_len(&"'".repeat(1000)), 6000);
        for text in ["", "a\r\nb\n\rc\rd\n", "\n\n\r\r", "<b>猪&\"x\"</b>"] {
            assert_eq!(content_len(text), content(text).len(), "{text:?}");
        }
    }
}
