//! Parsing a client's frame (already decoded and cleaned) into a [`Command`].
//!
//! A frame that starts with `/` is a command: the word runs to the first space and the argument
//! is the rest, trimmed. Matching is exact. Anything else is a chat message.

/// What a logged-in client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// A chat message for the client's channel.
    Chat(&'a str),
    /// `/join C`; the argument may be empty (missing).
    Join(&'a str),
    /// `/create C`; the argument may be empty (missing).
    Create(&'a str),
    /// `/list`.
    List,
    /// `/time`.
    Time,
    /// `/who`.
    Who,
    /// `/sonnet N` or `/poem N`, with the argument as typed.
    Sonnet(&'a str),
    /// `/help`.
    Help,
    /// `/members`.
    Members,
    /// `/leave`.
    Leave,
    /// `/msg NAME TEXT`, the argument unsplit.
    Msg(&'a str),
    /// `/search TERM`.
    Search(&'a str),
    /// `/register PASSWORD`.
    Register(&'a str),
    /// `/identify PASSWORD`.
    Identify(&'a str),
    /// `/quit`.
    Quit,
    /// Any other `/word`; holds the command word only.
    Unknown(&'a str),
}

impl<'a> Command<'a> {
    /// Parses a non-empty, cleaned frame text.
    pub fn parse(text: &'a str) -> Command<'a> {
        if !text.starts_with('/') {
            return Command::Chat(text);
        }
        let (word, arg) = match text.find(' ') {
            Some(i) => (&text[..i], text[i + 1..].trim()),
            None => (text, ""),
        };
        match word {
            "/join" => Command::Join(arg),
            "/create" => Command::Create(arg),
            "/list" => Command::List,
            "/time" => Command::Time,
            "/who" => Command::Who,
            "/sonnet" | "/poem" => Command::Sonnet(arg),
            "/help" => Command::Help,
            "/members" => Command::Members,
            "/leave" => Command::Leave,
            "/msg" => Command::Msg(arg),
            "/search" => Command::Search(arg),
            "/register" => Command::Register(arg),
            "/identify" => Command::Identify(arg),
            "/quit" => Command::Quit,
            _ => Command::Unknown(word),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Command::{self, *};

    #[test]
    fn chat_and_commands() {
        assert_eq!(Command::parse("hello"), Chat("hello"));
        assert_eq!(Command::parse(" /join x"), Chat(" /join x"));
        assert_eq!(Command::parse("/join  room one "), Join("room one"));
        assert_eq!(Command::parse("/join"), Join(""));
        assert_eq!(Command::parse("/create x"), Create("x"));
        assert_eq!(Command::parse("/list"), List);
        assert_eq!(Command::parse("/list extra"), List);
        assert_eq!(Command::parse("/poem 3"), Sonnet("3"));
        assert_eq!(Command::parse("/msg  bob hi there "), Msg("bob hi there"));
        assert_eq!(Command::parse("/search"), Search(""));
        assert_eq!(Command::parse("/identify pass word"), Identify("pass word"));
        assert_eq!(Command::parse("/register x"), Register("x"));
        assert_eq!(Command::parse("/quit"), Quit);
        assert_eq!(Command::parse("/quit now"), Quit);
    }

    #[test]
    fn matching_is_exact() {
        assert_eq!(Command::parse("/joinx a"), Unknown("/joinx"));
        assert_eq!(Command::parse("/JOIN a"), Unknown("/JOIN"));
        assert_eq!(Command::parse("/"), Unknown("/"));
        assert_eq!(Command::parse("/join\tx"), Unknown("/join\tx"));
    }

    /// Section 3 on any line: a command is `/` then a word up to the first space, matched
    /// exactly; its argument is the rest, trimmed; anything else is chat. The parts returned
    /// are slices of the line itself.
    #[test]
    fn parse_fuzz() {
        use crate::hub::fuzz::{odd_text, run};
        use rand::seq::IndexedRandom;
        use rand::Rng;
        const WORDS: &[&str] = &[
            "/join",
            "/create",
            "/list",
            "/time",
            "/who",
            "/sonnet",
            "/poem",
            "/help",
            "/members",
            "/leave",
            "/msg",
            "/search",
            "/register",
            "/identify",
            "/quit",
            "/JOIN",
            "/joinx",
            "/join\u{200b}",
            "/ｊｏｉｎ",
            "/",
            "//",
            "join",
            " /join",
        ];
        run(
            "parse_fuzz",
            std::time::Duration::from_millis(300),
            |rng, _| {
                let mut line = match rng.random_range(0..3) {
                    0 => odd_text(rng, 40),
                    _ => WORDS.choose(rng).unwrap_or(&"/").to_string(),
                };
                for _ in 0..rng.random_range(0..3) {
                    line.push_str(&" ".repeat(rng.random_range(0..3)));
                    line.push_str(&odd_text(rng, 20));
                }
                let within = |part: &str| {
                    let (start, end) =
                        (line.as_ptr() as usize, line.as_ptr() as usize + line.len());
                    let p = part.as_ptr() as usize;
                    part.is_empty() || (p >= start && p + part.len() <= end)
                };
                let command = Command::parse(&line);
                let Some(rest) = line.strip_prefix('/') else {
                    assert_eq!(command, Chat(&line));
                    return 1;
                };
                let (word, arg) = match rest.find(' ') {
                    Some(i) => (&line[..i + 1], rest[i + 1..].trim()),
                    None => (line.as_str(), ""),
                };
                let want = match word {
                    "/join" => Join(arg),
                    "/create" => Create(arg),
                    "/list" => List,
                    "/time" => Time,
                    "/who" => Who,
                    "/sonnet" | "/poem" => Sonnet(arg),
                    "/help" => Help,
                    "/members" => Members,
                    "/leave" => Leave,
                    "/msg" => Msg(arg),
                    "/search" => Search(arg),
                    "/register" => Register(arg),
                    "/identify" => Identify(arg),
                    "/quit" => Quit,
                    _ => Unknown(word),
                };
                assert_eq!(command, want, "{line:?}");
                if let Join(p) | Create(p) | Sonnet(p) | Msg(p) | Search(p) | Register(p)
                | Identify(p) | Unknown(p) = command
                {
                    assert!(within(p), "{p:?} is not part of {line:?}");
                }
                1
            },
        );
    }
}
