//! Unit tests of the IRC codec, and a seeded fuzz/property test (`IRC_FUZZ_ITERS` runs longer).

use super::message::*;
use super::numerics;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn msg(line: &str) -> Message<'_> {
    parse(line).unwrap()
}

fn written(prefix: Option<&str>, command: &str, middle: &[&str], trailing: Option<&str>) -> String {
    let mut out = Vec::new();
    let n = write_message(&mut out, prefix, command, middle, trailing).unwrap();
    assert_eq!(n, out.len());
    String::from_utf8(out).unwrap()
}

/// Every piece the splitter gives for `input` fed in one buffer: lines as text, `!` for TooLong.
fn split_all(input: &[u8]) -> (Vec<String>, usize) {
    let mut splitter = LineSplitter::new();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        match splitter.next(&input[pos..]) {
            Piece::Line { line, consumed } => {
                out.push(String::from_utf8_lossy(line).into_owned());
                pos += consumed;
            }
            Piece::TooLong { consumed } => {
                out.push("!".to_owned());
                pos += consumed;
            }
            Piece::Incomplete { consumed } => return (out, pos + consumed),
        }
    }
}

// ---- parse --------------------------------------------------------------------------------

#[test]
fn parses_the_modern_docs_examples() {
    let m = msg(":irc.example.com CAP * LIST :");
    assert_eq!(m.prefix, Some("irc.example.com"));
    assert_eq!(m.command, "CAP");
    assert_eq!(m.params(), ["*", "LIST", ""]);
    assert_eq!(
        msg("CAP * LS :multi-prefix sasl").params(),
        ["*", "LS", "multi-prefix sasl"]
    );
    assert_eq!(
        msg("CAP REQ :sasl message-tags foo").params(),
        ["REQ", "sasl message-tags foo"]
    );
    assert_eq!(
        msg(":dan!d@localhost PRIVMSG #chan :Hey!").params(),
        ["#chan", "Hey!"]
    );
    assert_eq!(
        msg(":dan!d@localhost PRIVMSG #chan Hey!").params(),
        ["#chan", "Hey!"]
    );
    assert_eq!(
        msg(":dan!d@localhost PRIVMSG #chan ::-)").params(),
        ["#chan", ":-)"]
    );
}

#[test]
fn skips_tags_and_extra_spaces() {
    let m = msg("@id=234AB;+draft/x=y :dan!d@localhost   PRIVMSG   #chan   :Hey  what's up! ");
    assert_eq!(m.prefix, Some("dan!d@localhost"));
    assert!(m.is("privmsg"));
    assert_eq!(m.params(), ["#chan", "Hey  what's up! "]);
    let m = msg("JOIN #a   ");
    assert_eq!(m.params(), ["#a"]);
    assert_eq!(msg("ping x\r").params(), ["x"]);
    assert_eq!(msg("QUIT").params(), [] as [&str; 0]);
    assert_eq!(msg("PRIVMSG #a :").param(1), Some(""));
    assert_eq!(msg("PRIVMSG #a :").param(2), None);
}

#[test]
fn refuses_lines_without_a_valid_command() {
    assert_eq!(parse(""), Err(ParseError::NoCommand));
    assert_eq!(parse("   "), Err(ParseError::NoCommand));
    assert_eq!(parse("@only=tags"), Err(ParseError::NoCommand));
    assert_eq!(parse(":prefix.only"), Err(ParseError::NoCommand));
    assert_eq!(parse(":prefix "), Err(ParseError::NoCommand));
    assert_eq!(parse("PRIV-MSG x"), Err(ParseError::BadCommand));
    assert_eq!(parse("1234 x"), Err(ParseError::BadCommand));
    assert_eq!(parse("12 x"), Err(ParseError::BadCommand));
    assert_eq!(parse(":p :x"), Err(ParseError::BadCommand));
    assert!(parse("001 nick :hi").is_ok());
}

#[test]
fn the_fifteenth_parameter_takes_the_rest_of_the_line() {
    let m = msg("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17");
    assert_eq!(m.params().len(), MAX_PARAMS);
    assert_eq!(m.param(13), Some("14"));
    assert_eq!(m.param(14), Some("15 16 17"));
    let m = msg("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :15 16");
    assert_eq!(m.param(14), Some("15 16"));
}

#[test]
fn decodes_lossily_and_drops_nul() {
    assert_eq!(decode(b"PRIVMSG #a :caf\xc3\xa9"), "PRIVMSG #a :café");
    assert!(matches!(
        decode(b"PRIVMSG #a :ok"),
        std::borrow::Cow::Borrowed(_)
    ));
    assert_eq!(
        decode(b"PRIVMSG #a :bad \xff end"),
        "PRIVMSG #a :bad \u{FFFD} end"
    );
    assert_eq!(decode(b"NICK a\0b"), "NICK ab");
}

// ---- the line splitter --------------------------------------------------------------------

#[test]
fn splits_crlf_lf_and_cr_and_skips_empty_lines() {
    let (lines, used) = split_all(b"NICK a\r\nUSER a 0 * :A\n\r\n\nPING x\rJOIN #partial");
    assert_eq!(lines, ["NICK a", "USER a 0 * :A", "PING x"]);
    assert_eq!(used, b"NICK a\r\nUSER a 0 * :A\n\r\n\nPING x\r".len());
}

#[test]
fn a_crlf_split_across_reads_counts_once() {
    let mut splitter = LineSplitter::new();
    assert_eq!(
        splitter.next(b"PING x\r"),
        Piece::Line {
            line: b"PING x",
            consumed: 7
        }
    );
    assert_eq!(splitter.next(b"\n"), Piece::Incomplete { consumed: 1 });
}

#[test]
fn the_length_limit_is_510_bytes_of_body_tags_excluded() {
    let body = format!("PRIVMSG #a :{}", "x".repeat(MAX_BODY - 12));
    assert_eq!(body.len(), MAX_BODY);
    let (lines, _) = split_all(format!("{body}\r\n").as_bytes());
    assert_eq!(lines, [body.as_str()]);
    let (lines, _) = split_all(format!("{body}x\r\nPING y\r\n").as_bytes());
    assert_eq!(lines, ["!", "PING y"]);
    let tags = format!("@{} ", "t".repeat(MAX_TAGS - 2));
    let (lines, _) = split_all(format!("{tags}{body}\r\n").as_bytes());
    assert_eq!(lines, [format!("{tags}{body}")]);
    let (lines, _) = split_all(format!("@t{tags}{body}\r\n").as_bytes());
    assert_eq!(lines, ["!"]);
}

#[test]
fn an_overlong_partial_line_is_reported_once_and_dropped_as_it_arrives() {
    let mut splitter = LineSplitter::new();
    let chunk = vec![b'x'; 600];
    assert_eq!(splitter.next(&chunk), Piece::TooLong { consumed: 600 });
    assert_eq!(splitter.next(&chunk), Piece::Incomplete { consumed: 600 });
    assert_eq!(
        splitter.next(b"xxx\r\nPING z\r\n"),
        Piece::Line {
            line: b"PING z",
            consumed: 13
        }
    );
    // A partial line exactly at the limit is not over it yet.
    let mut splitter = LineSplitter::new();
    assert_eq!(
        splitter.next(&[b'y'; MAX_BODY]),
        Piece::Incomplete { consumed: 0 }
    );
    let mut splitter = LineSplitter::new();
    let tag = vec![b'@'; MAX_TAGS + 1];
    assert_eq!(
        splitter.next(&tag),
        Piece::TooLong {
            consumed: tag.len()
        }
    );
}

// ---- writing ------------------------------------------------------------------------------

#[test]
fn writes_prefix_command_middles_and_trailing() {
    assert_eq!(
        written(Some("Kay!Kay@host"), "PRIVMSG", &["#tas"], Some("Hi!")),
        ":Kay!Kay@host PRIVMSG #tas :Hi!\r\n"
    );
    assert_eq!(written(None, "PING", &["tok"], None), "PING tok\r\n");
    assert_eq!(
        written(Some("srv"), "PONG", &["srv"], Some("tok")),
        ":srv PONG srv :tok\r\n"
    );
    assert_eq!(
        written(Some("s"), "CAP", &["*", "LS"], Some("")),
        ":s CAP * LS :\r\n"
    );
    assert_eq!(
        line_len(Some("s"), "CAP", &["*", "LS"], Some("")),
        ":s CAP * LS :\r\n".len()
    );
}

#[test]
fn writes_numerics_as_three_digits_with_the_target_first() {
    let mut out = Vec::new();
    write_numeric(
        &mut out,
        "chat.test",
        numerics::RPL_WELCOME,
        "kay",
        &[],
        Some("Welcome to the Chat Network, kay"),
    )
    .unwrap();
    write_numeric(
        &mut out,
        "chat.test",
        numerics::ERR_NOSUCHNICK,
        "*",
        &["bob"],
        Some("No such nick/channel"),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        ":chat.test 001 kay :Welcome to the Chat Network, kay\r\n\
         :chat.test 401 * bob :No such nick/channel\r\n"
    );
}

/// prefix, command, middle parameters, trailing parameter, expected error.
type Case<'a> = (
    Option<&'a str>,
    &'a str,
    &'a [&'a str],
    Option<&'a str>,
    WriteError,
);

#[test]
fn refuses_what_would_break_the_line_and_writes_nothing() {
    let mut out = b"kept".to_vec();
    let cases: [Case; 10] = [
        (Some(""), "PING", &[], None, WriteError::BadPrefix),
        (Some("a b"), "PING", &[], None, WriteError::BadPrefix),
        (None, "PRIV MSG", &[], None, WriteError::BadCommand),
        (None, "0001", &[], None, WriteError::BadCommand),
        (
            None,
            "PRIVMSG",
            &["#a\r"],
            None,
            WriteError::ForbiddenByte { index: 0 },
        ),
        (
            None,
            "PRIVMSG",
            &["#a"],
            Some("x\ny"),
            WriteError::ForbiddenByte { index: 1 },
        ),
        (
            None,
            "PRIVMSG",
            &["#a"],
            Some("x\0"),
            WriteError::ForbiddenByte { index: 1 },
        ),
        (
            None,
            "PRIVMSG",
            &["a b"],
            None,
            WriteError::BadMiddle { index: 0 },
        ),
        (
            None,
            "PRIVMSG",
            &["#a", ":b"],
            None,
            WriteError::BadMiddle { index: 1 },
        ),
        (
            None,
            "PRIVMSG",
            &[""],
            None,
            WriteError::BadMiddle { index: 0 },
        ),
    ];
    for (prefix, command, middle, trailing, error) in cases {
        assert_eq!(
            write_message(&mut out, prefix, command, middle, trailing),
            Err(error)
        );
    }
    let sixteen = ["p"; 16];
    assert_eq!(
        write_message(&mut out, None, "X", &sixteen, None),
        Err(WriteError::TooManyParams)
    );
    assert_eq!(
        write_message(&mut out, None, "X", &sixteen[..15], Some("t")),
        Err(WriteError::TooManyParams)
    );
    let long = "x".repeat(MAX_LINE);
    assert_eq!(
        write_message(&mut out, Some("a!b@c"), "PRIVMSG", &["#t"], Some(&long)),
        Err(WriteError::TooLong {
            len: line_len(Some("a!b@c"), "PRIVMSG", &["#t"], Some(&long))
        })
    );
    assert_eq!(out, b"kept");
}

#[test]
fn a_line_of_exactly_512_bytes_is_allowed() {
    let text = "x".repeat(MAX_LINE - ":a!b@c PRIVMSG #t :\r\n".len());
    let line = written(Some("a!b@c"), "PRIVMSG", &["#t"], Some(&text));
    assert_eq!(line.len(), MAX_LINE);
}

// ---- CTCP, case mapping, names ------------------------------------------------------------

#[test]
fn ctcp_action_is_detected_stripped_and_built() {
    assert_eq!(action("\x01ACTION waves\x01"), Some("waves"));
    assert_eq!(action("\x01ACTION waves"), Some("waves"));
    assert_eq!(action("\x01ACTION\x01"), Some(""));
    assert_eq!(action("\x01action waves hello\x01"), Some("waves hello"));
    assert_eq!(action("\x01VERSION\x01"), None);
    assert_eq!(action("ACTION waves"), None);
    assert_eq!(action("\x01ACTIONwaves\x01"), None);
    assert_eq!(
        ctcp("\x01PING 123 456\x01"),
        Some(Ctcp {
            command: "PING",
            params: "123 456"
        })
    );
    assert_eq!(ctcp("\x01\x01"), None);
    assert_eq!(make_action("waves"), "\x01ACTION waves\x01");
    assert_eq!(action(&make_action("a b")), Some("a b"));
}

#[test]
fn casemapping_is_ascii_only() {
    assert_eq!(casefold("#TAS"), "#tas");
    assert!(matches!(casefold("#tas"), std::borrow::Cow::Borrowed(_)));
    assert_eq!(casefold("[É]"), "[É]");
    assert!(same_casefold("#Tas", "#tAS"));
    assert!(!same_casefold("#é", "#É"));
    assert!(!same_casefold("[a]", "{a}"));
}

#[test]
fn channels_irc_can_carry() {
    assert_eq!(irc_channel("tas").as_deref(), Some("#tas"));
    assert_eq!(irc_channel("#x").as_deref(), Some("##x"));
    assert_eq!(irc_channel("café").as_deref(), Some("#café"));
    for bad in [
        "",
        "two words",
        "a,b",
        ":colon",
        "bell\x07",
        "cr\r",
        "nul\0",
        "c1\u{85}",
    ] {
        assert_eq!(irc_channel(bad), None, "{bad:?}");
    }
    assert!(channel_carriable("in:side"));
    assert!(channel_carriable(&"é".repeat(CHANNELLEN - 1)));
    assert!(!channel_carriable(&"é".repeat(CHANNELLEN)));
    assert_eq!(chat_channel("#tas"), Some("tas"));
    assert_eq!(chat_channel("##x"), Some("#x"));
    for bad in ["tas", "&tas", "#", "#:x", "#a b", "#a,b"] {
        assert_eq!(chat_channel(bad), None, "{bad:?}");
    }
}

#[test]
fn nicks_irc_can_carry() {
    for good in [
        "Kay", "kay_99", "[x]", "a|b", "j.doe", "9lives", "-dash", "Zoë", "你好", "a#b", "x:y",
    ] {
        assert!(nick_carriable(good), "{good:?}");
    }
    let bad = [
        "", "a,b", "a*", "a?", "a!b", "a@b", "$x", ":x", "#x", "&x", "~x", "@x", "%x", "+x",
        "a\x01",
    ];
    for name in bad {
        assert!(!nick_carriable(name), "{name:?}");
    }
    assert!(nick_carriable(&"n".repeat(NICKLEN)));
    assert!(!nick_carriable(&"n".repeat(NICKLEN + 1)));
    assert_eq!(nick_alias("#kay"), "_kay");
    assert_eq!(nick_alias("a!b@c"), "a_b_c");
    assert_eq!(nick_alias("+x+"), "_x+");
    for name in bad.iter().chain(["@", "x".repeat(40).as_str()].iter()) {
        assert!(
            nick_carriable(&nick_alias(name)),
            "{name:?} -> {:?}",
            nick_alias(name)
        );
    }
}

#[test]
fn usernames_irc_can_carry() {
    assert!(username_carriable("kayu"));
    assert!(username_carriable("~kay"));
    for bad in ["", "a b", "a@b", "a!b", ":x", "a\x07"] {
        assert!(!username_carriable(bad), "{bad:?}");
    }
}

// ---- fuzz / properties --------------------------------------------------------------------

/// Iterations for the randomized tests: a few thousand by default (well under a second in a
/// debug build), more with `IRC_FUZZ_ITERS=1000000 cargo test proto::irc`.
fn iterations() -> u64 {
    std::env::var("IRC_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// Bytes that exercise the grammar: separators, terminators, NUL, CTCP, invalid UTF-8.
fn random_bytes(rng: &mut SmallRng, max: usize) -> Vec<u8> {
    const SPICE: &[u8] = b" :@!#,\r\n\0\x01\xff\xc3\xa9aZ09";
    let len = rng.random_range(0..=max);
    (0..len)
        .map(|_| {
            if rng.random_bool(0.5) {
                SPICE[rng.random_range(0..SPICE.len())]
            } else {
                rng.random()
            }
        })
        .collect()
}

#[test]
fn random_input_never_panics_and_never_yields_an_overlong_line() {
    let mut rng = SmallRng::seed_from_u64(0x001b_c0de);
    for _ in 0..iterations() {
        let mut stream = random_bytes(&mut rng, 1400);
        if rng.random_bool(0.3) {
            // Long lines: keep only a few terminators, so that lines near and over the limit occur.
            for b in stream.iter_mut().filter(|b| matches!(b, b'\r' | b'\n')) {
                if rng.random_bool(0.9) {
                    *b = b'x';
                }
            }
        }
        let mut splitter = LineSplitter::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        while fed < stream.len() {
            // Feed the stream in random pieces, as reads would deliver it.
            let take = rng.random_range(1..=(stream.len() - fed).min(700));
            buf.extend_from_slice(&stream[fed..fed + take]);
            fed += take;
            let mut pos = 0;
            loop {
                match splitter.next(&buf[pos..]) {
                    Piece::Line { line, consumed } => {
                        assert!(!line.is_empty() && consumed > line.len());
                        assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
                        let limit = if line[0] == b'@' {
                            MAX_TAGS + MAX_BODY
                        } else {
                            MAX_BODY
                        };
                        assert!(line.len() <= limit, "a line of {} bytes", line.len());
                        let text = decode(line);
                        if let Ok(m) = parse(&text) {
                            assert!(is_command(m.command));
                            assert!(m.params().iter().all(|p| !p.contains(['\r', '\n', '\0'])));
                        }
                        pos += consumed;
                    }
                    Piece::TooLong { consumed } => pos += consumed,
                    Piece::Incomplete { consumed } => {
                        pos += consumed;
                        break;
                    }
                }
            }
            buf.drain(..pos);
            // What is kept is never more than one line's limit.
            assert!(buf.len() <= MAX_TAGS + MAX_BODY, "kept {}", buf.len());
        }
        // Whole random lines through parse directly (no splitter) never panic either.
        let _ = parse(&decode(&stream));
    }
}

/// A random valid middle parameter: no space, CR, LF, NUL, not empty, no leading `:`.
fn random_middle(rng: &mut SmallRng) -> String {
    const CHARS: &[char] = &[
        'a', 'Z', '0', '#', '!', '@', ':', ',', '\x01', 'é', '💬', '\u{FFFD}',
    ];
    let len = rng.random_range(1..=12);
    let mut s: String = (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())])
        .collect();
    if s.starts_with(':') {
        s.replace_range(0..1, "x");
    }
    s
}

fn random_trailing(rng: &mut SmallRng) -> String {
    const CHARS: &[char] = &['a', ' ', ':', '\x01', 'é', '@', '\t'];
    let len = rng.random_range(0..=40);
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())])
        .collect()
}

#[test]
fn write_then_parse_round_trips() {
    let mut rng = SmallRng::seed_from_u64(512);
    const COMMANDS: &[&str] = &["PRIVMSG", "NOTICE", "JOIN", "x", "001", "433", "CAP"];
    for _ in 0..iterations() {
        let prefix = rng.random_bool(0.7).then(|| random_middle(&mut rng));
        let command = COMMANDS[rng.random_range(0..COMMANDS.len())];
        let middle: Vec<String> = (0..rng.random_range(0..=14))
            .map(|_| random_middle(&mut rng))
            .collect();
        let middle: Vec<&str> = middle.iter().map(String::as_str).collect();
        let trailing =
            (middle.len() < MAX_PARAMS && rng.random_bool(0.6)).then(|| random_trailing(&mut rng));
        let mut out = Vec::new();
        match write_message(
            &mut out,
            prefix.as_deref(),
            command,
            &middle,
            trailing.as_deref(),
        ) {
            Ok(n) => {
                assert_eq!(n, out.len());
                assert!(out.ends_with(b"\r\n"));
                let (lines, used) = split_all(&out);
                assert_eq!(used, out.len());
                assert_eq!(lines.len(), 1, "{:?}", String::from_utf8_lossy(&out));
                let text = decode(&out[..out.len() - 2]);
                let m = parse(&text).unwrap();
                // Only a prefix that begins with ':' would lose it, and prefixes here do not.
                assert_eq!(m.prefix, prefix.as_deref());
                assert_eq!(m.command, command);
                let mut expected = middle.clone();
                if let Some(t) = &trailing {
                    expected.push(t);
                }
                assert_eq!(m.params(), expected.as_slice());
            }
            Err(WriteError::TooLong { len }) => {
                assert!(len > MAX_LINE);
                assert!(out.is_empty());
            }
            Err(e) => panic!("valid parts refused: {e}"),
        }
    }
}

#[test]
fn parse_then_write_is_stable() {
    // Anything that parses and can be written again parses to the same message.
    let mut rng = SmallRng::seed_from_u64(7);
    for _ in 0..iterations() {
        let bytes = random_bytes(&mut rng, 120);
        let text = decode(&bytes);
        let Ok(m) = parse(&text) else { continue };
        let params = m.params();
        let (middle, trailing) = match params.split_last() {
            Some((last, rest)) => (rest, Some(*last)),
            None => (params, None),
        };
        let mut out = Vec::new();
        if write_message(&mut out, m.prefix, m.command, middle, trailing).is_ok() {
            let again = decode(&out[..out.len() - 2]).into_owned();
            assert_eq!(parse(&again).unwrap(), m);
        }
    }
}
