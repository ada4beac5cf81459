//! The numeric replies the IRC side sends, with their parameter shapes.
//!
//! Shapes follow modern.ircdocs.horse ("Numerics") and the IRCv3 capability-negotiation and
//! SASL 3.1 specifications. `<client>` is always the first parameter: the client's nick, or `*`
//! before it has one. The words after the last `:` are the usual English text; clients show
//! them and do not parse them, and our own wording lives in `utils_errors.rs`.

/// A three-digit numeric reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Numeric(u16);

impl Numeric {
    /// The code as a number (`1` for `001`).
    pub const fn code(self) -> u16 {
        self.0
    }

    /// The code as the three ASCII digits sent on the wire (`b"001"`).
    pub fn digits(self) -> [u8; 3] {
        let n = self.0 % 1000;
        // Each digit is 0..=9, so the casts cannot truncate.
        [
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ]
    }
}

impl std::fmt::Display for Numeric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:03}", self.0 % 1000)
    }
}

// ---- Registration: the welcome burst --------------------------------------------------------

/// First line after registration: `<client> :Welcome to the <network> Network, <nick>`.
/// Its first parameter tells the client its nick.
pub const RPL_WELCOME: Numeric = Numeric(1);
/// After `001`: `<client> :Your host is <servername>, running version <version>`.
pub const RPL_YOURHOST: Numeric = Numeric(2);
/// After `002`: `<client> :This server was created <datetime>`.
pub const RPL_CREATED: Numeric = Numeric(3);
/// After `003`, no trailing text: `<client> <servername> <version> <user modes> <channel
/// modes>`; each mode list must have at least one letter (e.g. `i` and `n`).
pub const RPL_MYINFO: Numeric = Numeric(4);
/// After `004` (and for `VERSION`): `<client> <token>{ <token>} :are supported by this server`,
/// at most 13 tokens per line, several lines allowed.
pub const RPL_ISUPPORT: Numeric = Numeric(5);

// ---- LUSERS (sent after 005, and for LUSERS) ------------------------------------------------

/// `<client> :There are <u> users and <i> invisible on <s> servers` (required).
pub const RPL_LUSERCLIENT: Numeric = Numeric(251);
/// `<client> <ops> :operator(s) online` (only when there are operators).
pub const RPL_LUSEROP: Numeric = Numeric(252);
/// `<client> <connections> :unknown connection(s)` (connections not yet registered).
pub const RPL_LUSERUNKNOWN: Numeric = Numeric(253);
/// `<client> <channels> :channels formed`.
pub const RPL_LUSERCHANNELS: Numeric = Numeric(254);
/// `<client> :I have <c> clients and <s> servers` (required).
pub const RPL_LUSERME: Numeric = Numeric(255);
/// `<client> <u> <m> :Current local users <u>, max <m>`.
pub const RPL_LOCALUSERS: Numeric = Numeric(265);
/// `<client> <u> <m> :Current global users <u>, max <m>`.
pub const RPL_GLOBALUSERS: Numeric = Numeric(266);

/// A command the server will not run now (a long reply is still being sent): `<client>
/// <command> :Please wait a while and try again.`.
pub const RPL_TRYAGAIN: Numeric = Numeric(263);
/// Reply to `TIME`: `<client> <server> :<human-readable time>`.
pub const RPL_TIME: Numeric = Numeric(391);

// ---- MOTD (sent after LUSERS, and for MOTD) -------------------------------------------------

/// `<client> :- <server> Message of the day - `, before the `372` lines.
pub const RPL_MOTDSTART: Numeric = Numeric(375);
/// `<client> :<line of the motd>`, one per line.
pub const RPL_MOTD: Numeric = Numeric(372);
/// `<client> :End of /MOTD command.`, after the last `372`.
pub const RPL_ENDOFMOTD: Numeric = Numeric(376);
/// Instead of 375/372/376 when there is no MOTD: `<client> :MOTD File is missing`.
pub const ERR_NOMOTD: Numeric = Numeric(422);

// ---- Modes (minimal: clients query them after registration and after JOIN) ------------------

/// Reply to `MODE <own nick>`: `<client> <user modes>` (e.g. `+` or `+i`).
pub const RPL_UMODEIS: Numeric = Numeric(221);
/// Reply to `MODE #chan`: `<client> <channel> <modestring> <mode arguments>…` (e.g. `+n`).
pub const RPL_CHANNELMODEIS: Numeric = Numeric(324);
/// After `324`: `<client> <channel> <creationtime>` (a Unix time).
pub const RPL_CREATIONTIME: Numeric = Numeric(329);
/// Reply to `MODE #chan b` (irssi asks after each JOIN): `<client> <channel> :End of channel
/// ban list`.
pub const RPL_ENDOFBANLIST: Numeric = Numeric(368);
/// A user mode letter the server does not know: `<client> :Unknown MODE flag`.
pub const ERR_UMODEUNKNOWNFLAG: Numeric = Numeric(501);
/// `MODE` on another user's nick: `<client> :Cant change mode for other users`.
pub const ERR_USERSDONTMATCH: Numeric = Numeric(502);

// ---- AWAY -----------------------------------------------------------------------------------

/// To a PRIVMSG's sender (and in WHOIS) when the target nick is away: `<client> <nick>
/// :<away message>`; the message is still delivered.
pub const RPL_AWAY: Numeric = Numeric(301);
/// Reply to `AWAY` without text: `<client> :You are no longer marked as being away`.
pub const RPL_UNAWAY: Numeric = Numeric(305);
/// Reply to `AWAY :text`: `<client> :You have been marked as being away`.
pub const RPL_NOWAWAY: Numeric = Numeric(306);

// ---- WHOIS (311, 319, 312, 317, 330/307, 318) ------------------------------------------------

/// `<client> <nick> :has identified for this nick` (a registered name that identified).
pub const RPL_WHOISREGNICK: Numeric = Numeric(307);
/// `<client> <nick> <username> <host> * :<realname>` (the `*` is literal).
pub const RPL_WHOISUSER: Numeric = Numeric(311);
/// `<client> <nick> <server> :<server info>`.
pub const RPL_WHOISSERVER: Numeric = Numeric(312);
/// `<client> <nick> <secs> <signon> :seconds idle, signon time` (both integers).
pub const RPL_WHOISIDLE: Numeric = Numeric(317);
/// Last WHOIS line, even when nothing else was sent: `<client> <nick> :End of /WHOIS list`;
/// `<nick>` exactly as the client sent it.
pub const RPL_ENDOFWHOIS: Numeric = Numeric(318);
/// `<client> <nick> :<channel>{ <channel>}` (no prefixes: there are no operators).
pub const RPL_WHOISCHANNELS: Numeric = Numeric(319);
/// `<client> <nick> <account> :is logged in as`.
pub const RPL_WHOISACCOUNT: Numeric = Numeric(330);

// ---- WHO ------------------------------------------------------------------------------------

/// One per user: `<client> <channel> <username> <host> <server> <nick> <flags> :<hopcount>
/// <realname>`; `<channel>` is the queried channel for `WHO #chan`, otherwise `*` (or any
/// channel the user is in); `<flags>` is `H` (here) or `G` (gone, away); hopcount `0`.
pub const RPL_WHOREPLY: Numeric = Numeric(352);
/// Last WHO line: `<client> <mask> :End of WHO list`, `<mask>` as the client sent it.
pub const RPL_ENDOFWHO: Numeric = Numeric(315);

// ---- LIST -----------------------------------------------------------------------------------

/// Optional first LIST line: `<client> Channel :Users  Name`.
pub const RPL_LISTSTART: Numeric = Numeric(321);
/// One per channel IRC can carry: `<client> <channel> <client count> :<topic>`.
pub const RPL_LIST: Numeric = Numeric(322);
/// Last LIST line, always sent: `<client> :End of /LIST`.
pub const RPL_LISTEND: Numeric = Numeric(323);

// ---- TOPIC, NAMES (JOIN sends them too) -----------------------------------------------------

/// Reply to `TOPIC #chan` when there is no topic: `<client> <channel> :No topic is set`
/// (after a JOIN, nothing is sent for a channel without a topic).
pub const RPL_NOTOPIC: Numeric = Numeric(331);
/// The topic, after a JOIN or for `TOPIC #chan`: `<client> <channel> :<topic>`.
pub const RPL_TOPIC: Numeric = Numeric(332);
/// Members: `<client> <symbol> <channel> :<nick>{ <nick>}`, symbol `=` (public); as many lines
/// as needed, each within 512 bytes; the joiner is among them after a JOIN.
pub const RPL_NAMREPLY: Numeric = Numeric(353);
/// After the `353` lines (alone for an unknown channel): `<client> <channel> :End of /NAMES
/// list`.
pub const RPL_ENDOFNAMES: Numeric = Numeric(366);

// ---- Errors ---------------------------------------------------------------------------------

/// No such nick (PRIVMSG/NOTICE/WHOIS/MODE target): `<client> <nickname> :No such
/// nick/channel`.
pub const ERR_NOSUCHNICK: Numeric = Numeric(401);
/// No such channel, or a name IRC cannot carry (JOIN, PART, TOPIC, PRIVMSG to `#…`): `<client>
/// <channel> :No such channel`.
pub const ERR_NOSUCHCHANNEL: Numeric = Numeric(403);
/// PRIVMSG/NOTICE to a channel the sender is not in: `<client> <channel> :Cannot send to
/// channel` (never sent for NOTICE: no automatic reply to a NOTICE).
pub const ERR_CANNOTSENDTOCHAN: Numeric = Numeric(404);
/// JOIN over a per-user channel limit: `<client> <channel> :You have joined too many
/// channels`.
pub const ERR_TOOMANYCHANNELS: Numeric = Numeric(405);
/// `PING` without a token: `<client> :No origin specified`.
pub const ERR_NOORIGIN: Numeric = Numeric(409);
/// Unknown `CAP` subcommand: `<client> <subcommand> :Invalid CAP command` (IRCv3).
pub const ERR_INVALIDCAPCMD: Numeric = Numeric(410);
/// PRIVMSG/NOTICE without a target: `<client> :No recipient given (<command>)`.
pub const ERR_NORECIPIENT: Numeric = Numeric(411);
/// PRIVMSG/NOTICE without text: `<client> :No text to send`.
pub const ERR_NOTEXTTOSEND: Numeric = Numeric(412);
/// A line over 512 bytes (or tags over their limit), or a PRIVMSG whose relayed line would be:
/// `<client> :Input line was too long`.
pub const ERR_INPUTTOOLONG: Numeric = Numeric(417);
/// Unknown command from a registered client: `<client> <command> :Unknown command`.
pub const ERR_UNKNOWNCOMMAND: Numeric = Numeric(421);
/// `NICK` without a nick: `<client> :No nickname given`.
pub const ERR_NONICKNAMEGIVEN: Numeric = Numeric(431);
/// A nick the chat refuses: `<client> <nick> :Erroneus nickname` (`<nick>` as sent; `*` if it
/// cannot be a middle parameter).
pub const ERR_ERRONEUSNICKNAME: Numeric = Numeric(432);
/// A nick someone connected already uses: `<client> <nick> :Nickname is already in use`.
pub const ERR_NICKNAMEINUSE: Numeric = Numeric(433);
/// A nick that cannot be had just now (a cluster that cannot be asked):
/// `<client> <nick> :Nick/channel is temporarily unavailable`.
pub const ERR_UNAVAILRESOURCE: Numeric = Numeric(437);
/// PART/TOPIC/NAMES-restricted on a channel the client is not in: `<client> <channel> :You're
/// not on that channel`.
pub const ERR_NOTONCHANNEL: Numeric = Numeric(442);
/// Any command but CAP/PASS/NICK/USER/AUTHENTICATE/PING/PONG/QUIT before registration
/// (irssi probes with `JOIN :` and hides this reply): `<client> <command> :You have not
/// registered` (modern.ircdocs.horse omits `<command>`; InspIRCd sends it).
pub const ERR_NOTREGISTERED: Numeric = Numeric(451);
/// A command without its required parameters: `<client> <command> :Not enough parameters`.
pub const ERR_NEEDMOREPARAMS: Numeric = Numeric(461);
/// `USER` or `PASS` after registration: `<client> :You may not reregister`.
pub const ERR_ALREADYREGISTERED: Numeric = Numeric(462);
/// A wrong connection password (`PASS` for a registered name): `<client> :Password incorrect`.
pub const ERR_PASSWDMISMATCH: Numeric = Numeric(464);
/// A channel name that is not a channel: `<channel> :Bad Channel Mask` (no `<client>` in
/// modern.ircdocs.horse's shape; prefer `403` for names IRC cannot carry).
pub const ERR_BADCHANMASK: Numeric = Numeric(476);
/// Setting a topic (topics are read-only here): `<client> <channel> :You're not channel
/// operator`.
pub const ERR_CHANOPRIVSNEEDED: Numeric = Numeric(482);

// ---- SASL (IRCv3 sasl-3.1) ------------------------------------------------------------------

/// On success, before `903`: `<client> <nick>!<user>@<host> <account> :You are now logged in
/// as <account>` (`<nick>` and `<client>` are `*` when NICK has not come yet).
pub const RPL_LOGGEDIN: Numeric = Numeric(900);
/// The account is unset: `<client> <nick>!<user>@<host> :You are now logged out`.
pub const RPL_LOGGEDOUT: Numeric = Numeric(901);
/// The account is locked (e.g. guessing is slowed): `<client> :You must use a nick assigned to
/// you`.
pub const ERR_NICKLOCKED: Numeric = Numeric(902);
/// After `900`: `<client> :SASL authentication successful`.
pub const RPL_SASLSUCCESS: Numeric = Numeric(903);
/// Wrong password, unknown account, bad base64 or PLAIN message: `<client> :SASL
/// authentication failed`.
pub const ERR_SASLFAIL: Numeric = Numeric(904);
/// An `AUTHENTICATE` parameter over 400 bytes: `<client> :SASL message too long`.
pub const ERR_SASLTOOLONG: Numeric = Numeric(905);
/// `AUTHENTICATE *`, or registration ended (CAP END) mid-exchange: `<client> :SASL
/// authentication aborted`.
pub const ERR_SASLABORTED: Numeric = Numeric(906);
/// `AUTHENTICATE` after a success: `<client> :You have already authenticated using SASL`.
pub const ERR_SASLALREADY: Numeric = Numeric(907);
/// An unsupported mechanism, before `904`: `<client> <mechanisms> :are available SASL
/// mechanisms` (`PLAIN`).
pub const RPL_SASLMECHS: Numeric = Numeric(908);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_are_three_digits() {
        assert_eq!(&RPL_WELCOME.digits(), b"001");
        assert_eq!(&RPL_ISUPPORT.digits(), b"005");
        assert_eq!(&RPL_UMODEIS.digits(), b"221");
        assert_eq!(&ERR_INPUTTOOLONG.digits(), b"417");
        assert_eq!(&RPL_SASLMECHS.digits(), b"908");
        assert_eq!(RPL_YOURHOST.to_string(), "002");
        assert_eq!(ERR_NOSUCHNICK.code(), 401);
    }
}
