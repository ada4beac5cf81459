//! Names: which are valid, and when two of them are the same name.
//!
//! Two names are one name when they are equal after Unicode case folding and the UTS #39
//! confusable skeleton (`Alice`, `ALICE` and `аlice` with a Cyrillic `а` are all one), so that
//! nobody can pass for somebody else with a look-alike. The hub keys every map of names by
//! [`name_key`] and shows names as they were typed.

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// True for the bidi controls that section 1 removes from text and section 2 forbids in
/// names: they can reverse the text around them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// True for Unicode's Default_Ignorable_Code_Point characters (DerivedCoreProperties.txt,
/// Unicode 15): invisible characters that would let two different names look the same.
pub fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Checks a name: 1 to 32 characters; no whitespace, control, invisible or
/// direction-changing characters. A name is checked, never cleaned.
pub fn valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && !name.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || is_default_ignorable(c)
                || is_bidi_control(c)
                || matches!(c, '\u{2028}' | '\u{2029}')
        })
}

/// The key under which a name is known: case folded, reduced to its confusable skeleton and
/// folded again (a skeleton may map to an upper-case prototype). Equal keys, one name.
pub fn name_key(name: &str) -> Box<str> {
    let folded = caseless::default_case_fold_str(name);
    let skeleton: String = unicode_security::confusable_detection::skeleton(&folded).collect();
    caseless::default_case_fold_str(&skeleton).into_boxed_str()
}

/// The key under which a channel is known: channel names compare case-insensitively with the
/// ASCII case mapping (IRC's `CASEMAPPING=ascii`), and are shown as they were created.
pub fn channel_key(name: &str) -> Box<str> {
    name.to_ascii_lowercase().into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_share_a_key() {
        let alice = name_key("alice");
        for same in ["Alice", "ALICE", "\u{0430}lice", "AL\u{0406}CE"] {
            assert_eq!(name_key(same), alice, "{same}");
        }
        assert_ne!(name_key("alicia"), alice);
        assert_ne!(name_key("bob"), alice);
    }

    #[test]
    fn invisible_and_bidi_characters_make_a_name_invalid() {
        assert!(valid_name("alice"));
        assert!(valid_name(&"é".repeat(32)));
        assert!(!valid_name(""));
        assert!(!valid_name(&"x".repeat(33)));
        assert!(!valid_name("two words"));
        for c in [
            '\u{200B}', '\u{202E}', '\u{2066}', '\u{FEFF}', '\u{00AD}', '\u{1B}', '\u{2028}',
        ] {
            assert!(!valid_name(&format!("ali{c}ce")), "{:?}", c);
        }
    }

    #[test]
    fn channel_keys_fold_ascii_only() {
        assert_eq!(channel_key("TAs"), channel_key("tas"));
        assert_ne!(channel_key("É"), channel_key("é"));
    }
}
