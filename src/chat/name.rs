//! Nicknames: what the chat accepts as a user's name.

/// Longest accepted nickname, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 32;

/// A nickname after trimming, if it is acceptable: 1 to [`MAX_NAME_CHARS`] characters, none of them invisible.
///
/// Refused (error `bad_name`): control characters; bidi controls (U+061C, U+200E/F, U+202A–U+202E,
/// U+2066–U+2069); zero-width and other default-ignorable characters (U+00AD soft hyphen, U+034F, U+115F/U+1160
/// and U+3164/U+FFA0 Hangul fillers, U+17B4/5, U+180E, U+200B–U+200D, U+2060–U+206F, U+FEFF, U+FFF0–U+FFFB,
/// U+1BCA0–U+1BCA3, U+1D173–U+1D17A, U+E0000–U+E0FFF); other format characters (U+0600–U+0605, U+06DD, U+070F,
/// U+0890/1, U+08E2, U+110BD, U+110CD, U+13430–U+1343F); U+2028/U+2029 inside a name; the blank U+2800. So a
/// name cannot reorder the text around it or pass for another name that looks the same. Emoji keep working:
/// a variation selector is allowed right after a character it can modify (an emoji or symbol, a CJK ideograph,
/// a Mongolian letter, or a keycap digit, `#` or `*` followed by U+20E3), a zero-width joiner between two emoji,
/// and tag characters in a flag sequence (U+1F3F4, tags, U+E007F) — never alone, stacked or at the edges.
pub fn valid_name(name: &str) -> Option<&str> {
    /// What the previous character lets the next one attach to.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Prev {
        /// Nothing can attach: the start, or after a selector, joiner or finished flag.
        Nothing,
        /// A visible character: a variation selector, joiner or tag may follow as it allows.
        Base(char),
        /// A variation selector after this base: only a joiner may follow (when the base is an emoji).
        Selected(char),
        /// Inside a flag's tag sequence: more tags or the cancel tag U+E007F must follow.
        Tag,
    }
    fn emoji(c: char) -> bool {
        matches!(c, '\u{A9}' | '\u{AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}' | '\u{2190}'..='\u{2BFF}'
            | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}' | '\u{1F000}'..='\u{1FAFF}')
    }
    fn ideograph(c: char) -> bool {
        matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3FFFF}')
    }
    fn selector_fits(selector: char, base: char, next: Option<char>) -> bool {
        match selector {
            '\u{FE0E}' | '\u{FE0F}' => {
                emoji(base) || (matches!(base, '0'..='9' | '#' | '*') && next == Some('\u{20E3}'))
            }
            '\u{FE00}'..='\u{FE0D}' => emoji(base) || ideograph(base),
            '\u{E0100}'..='\u{E01EF}' => ideograph(base),
            '\u{180B}'..='\u{180D}' | '\u{180F}' => matches!(base, '\u{1820}'..='\u{18AF}'),
            _ => false,
        }
    }
    fn invisible(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{AD}' | '\u{34F}' | '\u{61C}' | '\u{600}'..='\u{605}' | '\u{6DD}' | '\u{70F}'
                | '\u{890}' | '\u{891}' | '\u{8E2}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
                | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
                | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
                | '\u{110BD}' | '\u{110CD}' | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
    }

    let name = name.trim();
    if !(1..=MAX_NAME_CHARS).contains(&name.chars().count()) {
        return None;
    }
    let mut prev = Prev::Nothing;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        prev = match (c, prev) {
            (_, Prev::Tag) => match c {
                '\u{E0020}'..='\u{E007E}' => Prev::Tag,
                '\u{E007F}' => Prev::Nothing,
                _ => return None,
            },
            ('\u{E0020}'..='\u{E007E}', Prev::Base('\u{1F3F4}')) => Prev::Tag,
            ('\u{200D}', Prev::Base(b) | Prev::Selected(b)) if emoji(b) && next.is_some_and(emoji) => Prev::Nothing,
            (_, Prev::Base(b)) if selector_fits(c, b, next) => Prev::Selected(b),
            _ if invisible(c) => return None,
            _ => Prev::Base(c),
        };
    }
    (prev != Prev::Tag).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    /// Every invisible character the hardening issue lists, and their neighbours.
    const INVISIBLE: &[(char, &str)] = &[
        ('\u{202E}', "right-to-left override"),
        ('\u{202D}', "left-to-right override"),
        ('\u{202A}', "left-to-right embedding"),
        ('\u{202B}', "right-to-left embedding"),
        ('\u{202C}', "pop directional formatting"),
        ('\u{2066}', "left-to-right isolate"),
        ('\u{2067}', "right-to-left isolate"),
        ('\u{2068}', "first strong isolate"),
        ('\u{2069}', "pop directional isolate"),
        ('\u{200E}', "left-to-right mark"),
        ('\u{200F}', "right-to-left mark"),
        ('\u{061C}', "Arabic letter mark"),
        ('\u{200B}', "zero width space"),
        ('\u{200C}', "zero width non-joiner"),
        ('\u{200D}', "zero width joiner"),
        ('\u{2060}', "word joiner"),
        ('\u{2061}', "function application"),
        ('\u{2062}', "invisible times"),
        ('\u{2063}', "invisible separator"),
        ('\u{2064}', "invisible plus"),
        ('\u{206A}', "inhibit symmetric swapping"),
        ('\u{FEFF}', "zero width no-break space (BOM)"),
        ('\u{00AD}', "soft hyphen"),
        ('\u{034F}', "combining grapheme joiner"),
        ('\u{115F}', "Hangul choseong filler"),
        ('\u{1160}', "Hangul jungseong filler"),
        ('\u{3164}', "Hangul filler"),
        ('\u{FFA0}', "halfwidth Hangul filler"),
        ('\u{17B4}', "Khmer vowel inherent aq"),
        ('\u{180E}', "Mongolian vowel separator"),
        ('\u{2028}', "line separator"),
        ('\u{2029}', "paragraph separator"),
        ('\u{2800}', "Braille pattern blank"),
        ('\u{FE0F}', "variation selector 16"),
        ('\u{FE0E}', "variation selector 15"),
        ('\u{FE00}', "variation selector 1"),
        ('\u{E0100}', "variation selector 17"),
        ('\u{180B}', "Mongolian free variation selector 1"),
        ('\u{FFF9}', "interlinear annotation anchor"),
        ('\u{0600}', "Arabic number sign"),
        ('\u{1D173}', "musical symbol begin beam"),
        ('\u{1BCA0}', "shorthand format letter overlap"),
        ('\u{E0001}', "language tag"),
        ('\u{E0041}', "tag latin capital letter A"),
        ('\u{E007F}', "cancel tag"),
        ('\u{0007}', "bell"),
        ('\u{0085}', "next line"),
        ('\u{009B}', "control sequence introducer"),
    ];

    #[test]
    fn invisible_characters_are_refused_anywhere() {
        for &(c, what) in INVISIBLE {
            let mut names = vec![format!("ad{c}min"), c.to_string().repeat(3), format!("{c}")];
            if !c.is_whitespace() {
                // Whitespace at the edges is trimmed off (U+2028, U+2029, U+0085): the name that is left is fine.
                names.extend([format!("{c}admin"), format!("admin{c}")]);
            }
            for name in names {
                assert_eq!(valid_name(&name), None, "U+{:04X} {what} in {name:?}", c as u32);
            }
        }
    }

    #[test]
    fn selectors_joiners_and_tags_only_where_emoji_use_them() {
        for name in [
            "\u{FE0F}",
            "\u{FE0F}😀",
            "a\u{FE0F}",
            "ad\u{FE0F}min",
            "😀\u{FE0F}\u{FE0F}",
            "1\u{FE0F}",
            "a\u{FE0F}\u{20E3}",
            "a\u{E0100}",
            "\u{200D}😀",
            "😀\u{200D}",
            "a\u{200D}b",
            "😀\u{200D}a",
            "😀\u{200D}\u{200D}😀",
            "😀\u{E0067}\u{E007F}",
            "🏴\u{E0067}\u{E0062}",
            "🏴\u{E0067}x\u{E007F}",
            "🏴\u{E007F}",
            "a\u{180B}",
        ] {
            assert_eq!(valid_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn visible_names_and_emoji_are_kept() {
        for name in [
            "mynick",
            "猪猪",
            "Zoë Ångström",
            "Ελένη",
            "محمد",
            "שרה",
            "दिव्या",
            "😀",
            "👍🏽",
            "❤️",
            "☺︎",
            "©️",
            "1️⃣",
            "#️⃣",
            "👨‍👩‍👧",
            "🏳️‍🌈",
            "❤️‍🔥",
            "🧑🏽‍💻",
            "👁️‍🗨️",
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
            "葛\u{E0100}",
            "\u{1820}\u{180B}",
            "a b",
        ] {
            assert_eq!(valid_name(name), Some(name), "{name:?}");
        }
        assert_eq!(valid_name("  猪猪 \u{3000}"), Some("猪猪"), "whitespace around a name is trimmed");
        assert_eq!(valid_name("\u{2028}猪猪\u{2029}"), Some("猪猪"));
        assert_eq!(valid_name(&"猪".repeat(32)), Some("猪".repeat(32).as_str()));
        assert_eq!(valid_name(&"猪".repeat(33)), None);
        assert_eq!(valid_name(""), None);
        assert_eq!(valid_name(" \t "), None);
    }
}
