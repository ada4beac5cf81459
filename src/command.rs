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
}
