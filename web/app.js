// The web client of the chat server: the page that `server --web-port` serves at `/`.
//
// One WebSocket to /ws on the page's own origin; each message in either direction is the text
// of one 200-byte frame. The protocol never confirms anything, so the page learns what
// happened from the order of the replies: after every command it sends `/time`, whose reply
// (`Time is: …`) closes the reply of that command. Everything between belongs to the command,
// except frames that are plainly someone else's (chat, private messages, joins and leaves).
//
// Text from the server is only ever put on the page with textContent, never as markup.
'use strict';

/**
 * Cutting typed lines as the terminal client does (pure: test_harness/browser runs it in Node
 * too). A chat line leaves room for the `[NAME] ` the server adds; a `/msg NAME TEXT` for the
 * `[SENDER -> NAME] `; so the server never has to cut a typed line again.
 */
const chatLines = (function () {
  const FRAME_LEN = 200;

  const encoder = new TextEncoder();
  const byteLen = (s) => encoder.encode(s).length;
  const isSpace = (ch) => /\s/u.test(ch);
  /** What a receiver strips from the end of a frame. */
  const stripPadding = (s) => s.replace(/[ \t\r\n\0]+$/, '');

  /** The code-unit index where the longest prefix of `s` of at most `max` UTF-8 bytes ends. */
  function windowEnd(s, max) {
    let used = 0;
    let i = 0;
    for (const ch of s) {
      const n = byteLen(ch);
      if (used + n > max) break;
      used += n;
      i += ch.length;
    }
    return i;
  }

  /** The code point that ends just before index `i` of `s`. */
  function charBefore(s, i) {
    const low = s.charCodeAt(i - 1);
    if (i >= 2 && low >= 0xdc00 && low <= 0xdfff) {
      const high = s.charCodeAt(i - 2);
      if (high >= 0xd800 && high <= 0xdbff) return s.slice(i - 2, i);
    }
    return s.slice(i - 1, i);
  }

  /**
   * Where to cut `text` so that the first piece holds at most `max` bytes: before the last
   * whitespace that the window reaches (the whitespace begins the next piece), or, in a word
   * longer than the window, at the window's end moved back so that the next piece does not
   * begin with `/` when `noSlash`. Returns `text.length` when the text fits.
   */
  function cutPoint(text, max, noSlash) {
    if (byteLen(text) <= max) return text.length;
    const end = windowEnd(text, max);
    for (let i = end; i > 0; i -= charBefore(text, i).length) {
      if (i < text.length && isSpace(text[i]) && !isSpace(charBefore(text, i))) return i;
    }
    let cut = end;
    while (cut > 0 && (isSpace(charBefore(text, cut)) || (noSlash && text[cut] === '/'))) {
      cut -= charBefore(text, cut).length;
    }
    if (cut > 0) return cut;
    if (end > 0) return end;
    return [...text][0].length; // a window smaller than the first character
  }

  /** Cuts `text` into pieces of at most `max` bytes (see cutPoint); never an empty piece. */
  function splitText(text, max, noSlash) {
    const pieces = [];
    let rest = text;
    while (rest.length > 0) {
      const cut = cutPoint(rest, max, noSlash);
      pieces.push(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    return pieces;
  }

  /**
   * The chat frames for a typed chat line: each leaves room for the `[NAME] ` the server puts
   * before it, none begins with `/`, and none is only padding.
   */
  function splitChat(text, name) {
    const room = FRAME_LEN - byteLen(`[${name}] `);
    const frames = [];
    let rest = text;
    while (rest.length > 0) {
      const guard = rest.startsWith('/') ? ' ' : '';
      const cut = cutPoint(rest, room - guard.length, true);
      const piece = rest.slice(0, cut);
      rest = rest.slice(cut);
      if (stripPadding(piece) !== '') frames.push(guard + piece);
    }
    return frames;
  }

  /** `/msg NAME TEXT` as frames that fit, or null when it is not such a command. */
  function splitMsg(line, me) {
    if (!line.startsWith('/msg ')) return null;
    const arg = line.slice(5).trim();
    const space = arg.indexOf(' ');
    if (space < 0) return null;
    const to = arg.slice(0, space);
    const message = arg.slice(space + 1).trim();
    if (message === '') return null;
    const prefix = `/msg ${to} `;
    const room = Math.min(FRAME_LEN - byteLen(prefix), FRAME_LEN - byteLen(`[${me} -> ${to}] `));
    if (room < 4) return null;
    const frames = splitText(message, room, false)
      .filter((piece) => piece.trim() !== '')
      .map((piece) => prefix + piece);
    return { to, message, frames };
  }

  /** What to send for a typed line: {frames}, {skip: true} or {tooLong: true}. */
  function planLine(line, me) {
    const text = stripPadding(line);
    if (text === '') return { skip: true };
    if (!text.startsWith('/')) return { frames: splitChat(text, me) };
    const msg = splitMsg(text, me);
    if (msg) return { frames: msg.frames, msg };
    if (byteLen(text) <= FRAME_LEN) return { frames: [text] };
    return { tooLong: true };
  }

  return { FRAME_LEN, byteLen, stripPadding, cutPoint, splitText, splitChat, splitMsg, planLine };
})();

(function () {
  if (typeof document === 'undefined') return; // loaded for its chatLines only
  const { FRAME_LEN, byteLen, stripPadding, planLine } = chatLines;

  // ---- Protocol texts (they mirror utils_errors.rs; keep them in step) --------------------------

  /** The login probe: not a valid name (it has a space), so it is answered either way. */
  const PROBE = '/time now';
  const T = {
    invalidName: (n) => `Invalid name ${n}: a name is 1 to 32 characters without spaces.`,
    nameInUse: (n) => `Name ${n} is already in use. Send another name.`,
    tooClose: (n) => `Name ${n} is too close to a registered name. Send another name.`,
    registeredStart: (n) => `${n} is a registered name. Send /identify PASSWORD within `,
    identifyFirst: 'Send /identify PASSWORD first.',
    identified: (n) => `You are now identified as ${n}.`,
    wrongPassword: (n) => `Wrong password for ${n}.`,
    tooManyWrong: (n) => `Too many wrong passwords for ${n}. Try again in `,
    passwordLength: 'A password is 8 to 64 characters.',
    nowRegistered: (n) => `Name ${n} is now registered.`,
    notInChannel: 'Not currently in any channel. Must join a channel before sending messages.',
    membersOf: 'Members of ',
    whoUsers: 'Users: ------------',
    whoGroups: 'Groups: -----------',
    shutdown: 'The server is shutting down.',
    commandTooLong: 'Command too long: at most 200 bytes.',
  };
  const TIME_RE = /^Time is: \d\d\.\d\d\.\d\d,\d\d:\d\d$/;
  const STAMP_RE = /^\((\d\d\.\d\d\.\d\d,\d\d:\d\d)\) /;
  const OFFLINE_HEADER_RE = /^You have (\d+) offline messages?:$/;
  const OFFLINE_LINE_RE = /^\((\d\d\.\d\d\.\d\d,\d\d:\d\d)\) \[(\S+) -> (\S+)\] ([\s\S]*)$/;
  const PRIVATE_RE = /^\[(\S+) -> (\S+)\] ([\s\S]*)$/;
  const CHAT_RE = /^\[(\S+)\] ([\s\S]*)$/;
  const EVENT_RE = /^(\S+) has (joined|left)$/;
  /** A line piece this long may have been cut by the server: the next frame may continue it. */
  const CUT_LEN = 190;
  const MAX_LOG = 500;
  /** The requests after which the page is not sure which channel it is in until answered. */
  const CHANNEL_CHANGES = ['join', 'create', 'leave'];
  const MAX_RESULTS = 20;
  const CONNECT_TIMEOUT_MS = 10000;
  const RETRY_FIRST_MS = 500;
  const RETRY_MAX_MS = 15000;
  /** How often a reconnect tries again when the server still sees the old connection. */
  const IN_USE_RETRIES = 5;

  // ---- The page ------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'), statusText: $('status-text'), retryNow: $('retry-now'),
    whoami: $('whoami'), meName: $('me-name'), quit: $('quit'),
    loginView: $('login-view'), loginForm: $('login-form'), loginName: $('login-name'),
    passwordField: $('password-field'), loginPassword: $('login-password'),
    passwordHint: $('login-password-hint'), loginSubmit: $('login-submit'), loginError: $('login-error'),
    chatView: $('chat-view'), channelList: $('channel-list'), channelEmpty: $('channel-empty'),
    refreshChannels: $('refresh-channels'), createForm: $('create-form'), createName: $('create-name'),
    memberList: $('member-list'), channelTitle: $('channel-title'), leave: $('leave'),
    log: $('log'), sendForm: $('send-form'), composer: $('composer'),
    privateLog: $('private-log'), msgForm: $('msg-form'), msgTo: $('msg-to'), msgText: $('msg-text'),
    who: $('who'), members: $('members'), help: $('help'),
    searchForm: $('search-form'), searchTerm: $('search-term'),
    sonnetForm: $('sonnet-form'), sonnetNumber: $('sonnet-number'),
    registerForm: $('register-form'), registerPassword: $('register-password'),
    registerUsername: $('register-username'),
    results: $('results'),
  };

  const state = {
    ws: null,
    /** idle | connecting | login | password | online | retrying | closed */
    phase: 'idle',
    name: '',
    /** Kept in memory only, to identify again after a reconnect. */
    password: null,
    /** This name logged in once: a lost connection is retried. */
    everOnline: false,
    /** Why the page itself closed the connection (a refused login); no retry then. */
    stopReason: null,
    quitting: false,
    inUseRetries: 0,
    probe: false,
    channel: null,
    channels: [],
    members: [],
    /** Commands sent and not yet answered, oldest first (see the top of this file). */
    pending: [],
    /** An offline delivery being received: {remaining, last}. */
    offline: null,
    lastText: '',
    retryDelay: 0,
    retryTimer: null,
    tickTimer: null,
    connectTimer: null,
  };

  /** Per channel (the empty string: no channel), the message elements, oldest first. */
  const logs = new Map();

  function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.statusText.textContent = text;
    ui.retryNow.hidden = kind !== 'retrying';
  }

  function showView(chat) {
    ui.chatView.hidden = !chat;
    ui.loginView.hidden = chat;
    ui.whoami.hidden = !chat;
    ui.quit.hidden = !chat;
  }

  function showLogin(error, askPassword) {
    showView(false);
    ui.loginError.textContent = error || '';
    ui.passwordField.hidden = !askPassword;
    ui.loginSubmit.textContent = askPassword ? 'Identify' : 'Connect';
    if (askPassword) ui.loginPassword.focus();
    else ui.loginName.focus();
  }

  // ---- Messages on screen -----------------------------------------------------------------------

  function timeElement(date) {
    const t = document.createElement('time');
    t.dateTime = date.toISOString();
    t.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    return t;
  }

  function span(cls, text) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  /** A message element: the time of arrival, the sender (if any) and the text, all as text. */
  function messageElement(kind, sender, text) {
    const div = document.createElement('div');
    div.className = `msg ${kind}`;
    div.append(timeElement(new Date()));
    if (sender !== null) div.append(span('sender', sender));
    div.append(span('text', text));
    return div;
  }

  function appendTo(container, element, keep) {
    const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
    container.append(element);
    while (keep && container.childElementCount > keep) container.firstElementChild.remove();
    if (atBottom) container.scrollTop = container.scrollHeight;
  }

  function channelLog(channel) {
    const key = channel || '';
    if (!logs.has(key)) logs.set(key, []);
    return logs.get(key);
  }

  /** Adds a message to the current channel's log (and to the screen). */
  function addToChannel(kind, sender, text) {
    const el = messageElement(kind, sender, text);
    const list = channelLog(state.channel);
    list.push(el);
    if (list.length > MAX_LOG) list.shift();
    appendTo(ui.log, el, MAX_LOG);
    return el;
  }

  function notice(text, kind) {
    return addToChannel(kind || 'system', null, text);
  }

  function addPrivate(kind, sender, text, meta, replyTo) {
    const div = document.createElement('div');
    div.className = `msg private ${kind}`;
    div.append(timeElement(new Date()));
    if (meta) div.append(span('meta', meta));
    if (sender !== null) div.append(span('sender', sender));
    div.append(span('text', text));
    if (replyTo) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'reply';
      b.textContent = 'Reply';
      b.setAttribute('aria-label', `Reply to ${replyTo}`);
      b.addEventListener('click', () => {
        ui.msgTo.value = replyTo;
        ui.msgText.focus();
      });
      div.append(b);
    }
    appendTo(ui.privateLog, div, MAX_LOG);
    return div;
  }

  function showChannel() {
    const c = state.channel;
    ui.channelTitle.textContent = c === null ? 'No channel' : c;
    ui.leave.hidden = c === null;
    ui.log.setAttribute('aria-busy', 'true');
    ui.log.replaceChildren(...channelLog(c));
    ui.log.scrollTop = ui.log.scrollHeight;
    ui.log.removeAttribute('aria-busy');
    ui.log.setAttribute('aria-label', c === null ? 'Messages' : `Messages in ${c}`);
    renderChannels();
    renderMembers();
  }

  function switchChannel(c) {
    if (c === state.channel) return;
    state.channel = c;
    state.members = []; // until the server says who is there (a /members follows every join)
    showChannel();
  }

  function renderChannels() {
    const items = state.channels.map((c) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = c;
      if (c === state.channel) {
        b.setAttribute('aria-current', 'true');
        b.setAttribute('aria-label', `${c} (current channel)`);
      } else {
        b.setAttribute('aria-label', `Join ${c}`);
      }
      b.addEventListener('click', () => {
        if (c !== state.channel) submitLine(`/join ${c}`);
      });
      li.append(b);
      return li;
    });
    ui.channelList.replaceChildren(...items);
    ui.channelEmpty.hidden = items.length > 0;
  }

  function renderMembers() {
    const items = state.members.map((m) => {
      const li = document.createElement('li');
      li.textContent = m === state.name ? `${m} (you)` : m;
      return li;
    });
    ui.memberList.replaceChildren(...items);
  }

  /** A block in the results panel, newest first: a heading, then `content` elements. */
  function addResult(title, content) {
    const article = document.createElement('article');
    const h = document.createElement('h4');
    h.textContent = title;
    article.append(h, timeElement(new Date()), ...content);
    ui.results.prepend(article);
    while (ui.results.childElementCount > MAX_RESULTS) ui.results.lastElementChild.remove();
  }

  function list(lines, render) {
    const ul = document.createElement('ul');
    for (const line of lines) {
      const li = document.createElement('li');
      render(li, line);
      ul.append(li);
    }
    return ul;
  }

  function para(text, cls) {
    const p = document.createElement('p');
    if (cls) p.className = cls;
    p.textContent = text;
    return p;
  }

  // ---- Replies as lines ---------------------------------------------------------------------------

  /**
   * The lines of a reply that came in several frames. A line longer than a frame arrives cut,
   * its first piece nearly filling a frame; the next frame then begins with the rest of it,
   * unless that frame's first line plainly starts a new line (`startsLine`).
   */
  function replyLines(frames, startsLine) {
    const lines = [];
    let mayContinue = false;
    for (const frame of frames) {
      const parts = frame.split('\n');
      if (mayContinue && lines.length > 0 && !(startsLine && startsLine(parts[0]))) {
        lines[lines.length - 1] += parts.shift();
        if (parts.length === 0) {
          mayContinue = byteLen(frame) >= CUT_LEN;
          continue;
        }
      }
      lines.push(...parts);
      mayContinue = byteLen(parts[parts.length - 1]) >= CUT_LEN;
    }
    return lines;
  }

  /** The members of `Members of C: a, b`, with the channel: {channel, members}. */
  function parseMembers(line) {
    if (!line.startsWith(T.membersOf)) return null;
    const rest = line.slice(T.membersOf.length);
    const sep = rest.lastIndexOf(': ');
    if (sep < 0) return null;
    return { channel: rest.slice(0, sep), members: rest.slice(sep + 2).split(', ').filter(Boolean) };
  }

  // ---- Sending -----------------------------------------------------------------------------------

  function sendRaw(text) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(text);
      return true;
    }
    return false;
  }

  /** Sends a command whose reply the page wants, then `/time` to close that reply. */
  function request(kind, command, extra) {
    if (state.phase !== 'online') return false;
    state.pending.push(Object.assign({ kind, command, frames: [] }, extra || {}));
    sendRaw(command);
    if (kind !== 'time') sendRaw('/time');
    return true;
  }

  /** Handles a line typed in the message box (or built by a button), as the terminal would. */
  function submitLine(line) {
    if (state.phase !== 'online') {
      notice('Not connected: nothing was sent.', 'error');
      return false;
    }
    const plan = planLine(line, state.name);
    if (plan.skip) return true;
    if (plan.tooLong) {
      notice(T.commandTooLong, 'error');
      return true;
    }
    const text = stripPadding(line);
    if (!text.startsWith('/')) {
      if (state.channel === null || state.pending.some((r) => CHANNEL_CHANGES.includes(r.kind))) {
        // Which channel it lands in (if any) is known only once the server has answered.
        plan.frames.forEach((f, i) => request('chat', f, { echo: i === 0 ? text : null }));
      } else {
        for (const f of plan.frames) sendRaw(f);
        addToChannel('own', state.name, text);
      }
      return true;
    }
    if (plan.msg) {
      const { to, message, frames } = plan.msg;
      addPrivate('own', `to ${to}`, message, null, null);
      for (const f of frames) request('msg', f, { to });
      return true;
    }
    const command = plan.frames[0];
    const space = command.indexOf(' ');
    const word = space < 0 ? command : command.slice(0, space);
    const arg = space < 0 ? '' : command.slice(space + 1).trim();
    switch (word) {
      case '/join':
      case '/create':
        if (arg === '') return request('other', command);
        request(word.slice(1), command, { channel: arg });
        request('members', '/members', { quiet: true });
        request('list', '/list', { quiet: true });
        return true;
      case '/leave':
        return request('leave', command);
      case '/list':
        return request('list', command);
      case '/members':
        return request('members', command);
      case '/who':
        return request('who', command);
      case '/search':
        return request('search', command, { term: arg });
      case '/sonnet':
      case '/poem':
        return request('sonnet', command, { number: arg });
      case '/help':
        return request('help', command);
      case '/time':
        return request('time', command);
      case '/register':
        return request('register', command, { secret: arg });
      case '/identify':
        return request('identify', command, { secret: arg });
      case '/quit':
        // The server closes the connection after /quit; closing our end too does not wait on it.
        state.quitting = true;
        sendRaw(command);
        setStatus('idle', 'Leaving…');
        if (state.ws) state.ws.close(1000);
        return true;
      default:
        return request('other', command);
    }
  }

  // ---- The connection -------------------------------------------------------------------------

  function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws`;
  }

  function clearTimers() {
    clearTimeout(state.retryTimer);
    clearInterval(state.tickTimer);
    clearTimeout(state.connectTimer);
    state.retryTimer = state.tickTimer = state.connectTimer = null;
  }

  function connect() {
    clearTimers();
    state.stopReason = null;
    state.quitting = false;
    state.pending = [];
    state.offline = null;
    state.lastText = '';
    state.phase = 'connecting';
    setStatus('connecting', state.everOnline ? 'Reconnecting…' : 'Connecting…');
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      scheduleRetry();
      return;
    }
    state.ws = ws;
    state.connectTimer = setTimeout(() => {
      if (state.ws === ws && ws.readyState !== WebSocket.OPEN) ws.close();
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      if (state.ws !== ws) return;
      clearTimeout(state.connectTimer);
      state.phase = 'login';
      setStatus('connecting', 'Logging in…');
      state.probe = true;
      sendRaw(state.name);
      sendRaw(PROBE);
    };
    ws.onmessage = (event) => {
      if (state.ws !== ws || typeof event.data !== 'string') return;
      onFrame(event.data);
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      onClosed();
    };
  }

  /** Closes the connection on purpose: no retry. */
  function stop(reason) {
    state.stopReason = reason;
    if (state.ws) state.ws.close();
  }

  function onClosed() {
    const phase = state.phase;
    state.ws = null;
    state.pending = [];
    state.offline = null;
    clearTimers();
    if (state.quitting) {
      state.phase = 'closed';
      state.everOnline = false;
      state.password = null;
      state.channel = null;
      state.members = [];
      setStatus('idle', 'Disconnected: you left the chat.');
      showLogin('');
      return;
    }
    if (state.stopReason !== null) {
      state.phase = 'idle';
      setStatus('idle', 'Not connected');
      showLogin(state.stopReason, false);
      return;
    }
    if (phase === 'password') {
      // The server closed it while waiting for the password: its last text says why.
      state.phase = 'idle';
      state.everOnline = false;
      setStatus('idle', 'Not connected');
      showLogin(state.lastText || 'The server closed the connection.', false);
      return;
    }
    if (phase === 'online') notice('The connection to the server was lost.', 'warn');
    scheduleRetry();
  }

  function scheduleRetry() {
    clearTimers();
    state.phase = 'retrying';
    const base = state.retryDelay === 0 ? RETRY_FIRST_MS : Math.min(state.retryDelay * 2, RETRY_MAX_MS);
    state.retryDelay = base;
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    const due = Date.now() + delay;
    const tick = () => {
      const secs = Math.max(1, Math.ceil((due - Date.now()) / 1000));
      setStatus('retrying', `Disconnected — retrying in ${secs} s`);
    };
    tick();
    state.tickTimer = setInterval(tick, 1000);
    state.retryTimer = setTimeout(connect, delay);
  }

  function loggedIn() {
    const wasShowingLogin = !ui.loginView.hidden;
    state.phase = 'online';
    state.everOnline = true;
    state.retryDelay = 0;
    state.inUseRetries = 0;
    state.probe = false;
    setStatus('online', 'Connected');
    ui.meName.textContent = state.name;
    ui.registerUsername.value = state.name;
    ui.loginPassword.value = '';
    ui.loginError.textContent = '';
    showView(true);
    request('list', '/list', { quiet: true });
    const rejoin = state.channel;
    if (rejoin !== null) {
      request('join', `/join ${rejoin}`, { channel: rejoin, rejoin: true });
      request('members', '/members', { quiet: true });
    }
    showChannel();
    if (wasShowingLogin) ui.composer.focus();
  }

  // ---- Frames from the server -------------------------------------------------------------------

  function onFrame(text) {
    state.lastText = text;
    switch (state.phase) {
      case 'login':
        return loginFrame(text);
      case 'password':
        return passwordFrame(text);
      case 'online':
        return onlineFrame(text);
      default:
        return undefined;
    }
  }

  function isRegisteredPrompt(text) {
    return text.startsWith(T.registeredStart(state.name)) && text.endsWith(' seconds.');
  }

  function loginFrame(text) {
    const n = state.name;
    if (state.everOnline && text === T.nameInUse(n) && state.inUseRetries < IN_USE_RETRIES) {
      // After a lost connection the server may not have noticed yet that the old one is gone.
      state.inUseRetries += 1;
      state.ws.close();
      return;
    }
    if (text === T.invalidName(n) || text === T.nameInUse(n) || text === T.tooClose(n)) {
      state.everOnline = false;
      stop(text);
      return;
    }
    if (isRegisteredPrompt(text)) {
      state.phase = 'password';
      if (state.password !== null) {
        setStatus('connecting', 'Identifying…');
        sendRaw(`/identify ${state.password}`);
      } else {
        setStatus('connecting', 'Waiting for the password');
        ui.passwordHint.textContent = text;
        showLogin('', true);
      }
      return;
    }
    if (state.probe && TIME_RE.test(text)) {
      loggedIn();
      return;
    }
    if (text === T.invalidName(PROBE)) return;
    // Before the probe's answer: the offline delivery of a name that is not registered.
    if (offlineFrame(text)) return;
    notice(text, 'system');
  }

  function passwordFrame(text) {
    const n = state.name;
    if (state.probe && text === T.identifyFirst) {
      state.probe = false;
      return;
    }
    if (text === T.identified(n)) {
      loggedIn();
      notice(text, 'ok');
      return;
    }
    if (text === T.wrongPassword(n) || text === T.passwordLength || text.startsWith(T.tooManyWrong(n))) {
      state.password = null;
      setStatus('connecting', 'Waiting for the password');
      showLogin(text, true);
      return;
    }
    if (isRegisteredPrompt(text)) return;
    ui.loginError.textContent = text;
  }

  /** An offline delivery: its header, then that many `(stamp) [sender -> me] text` lines. */
  function offlineFrame(text) {
    const parts = text.split('\n');
    const header = OFFLINE_HEADER_RE.exec(parts[0]);
    if (header) {
      state.offline = { remaining: Number(header[1]), last: null, lastLen: 0 };
      addPrivate('system', null, parts.shift(), null, null);
      if (parts.length === 0) return true;
    }
    const off = state.offline;
    if (off === null) return false;
    if (!header && !OFFLINE_LINE_RE.test(parts[0])) {
      if (off.last !== null && off.lastLen >= CUT_LEN && !looksNew(parts[0])) {
        // The rest of a line the server had to cut.
        off.last.querySelector('.text').textContent += parts.shift();
        off.lastLen = byteLen(text);
        if (parts.length === 0) return true;
      } else {
        // Not part of the delivery (a chat message in between, or the delivery is over).
        if (off.remaining <= 0) state.offline = null;
        return false;
      }
    } else if (!header && off.remaining <= 0) {
      state.offline = null;
      return false;
    }
    for (const line of parts) {
      const m = OFFLINE_LINE_RE.exec(line);
      if (!m) {
        notice(line, 'system');
        continue;
      }
      off.last = addPrivate('offline', m[2], m[4], `sent ${m[1]}, while you were away`, m[2]);
      off.lastLen = byteLen(line);
      off.remaining -= 1;
    }
    if (off.remaining <= 0 && off.lastLen < CUT_LEN) state.offline = null;
    return true;
  }

  /** A frame that is plainly not the rest of a cut line. */
  function looksNew(line) {
    return TIME_RE.test(line) || PRIVATE_RE.test(line) || CHAT_RE.test(line) || EVENT_RE.test(line) ||
      OFFLINE_HEADER_RE.test(line) || line === T.shutdown;
  }

  /** Frames that are someone else's doing rather than a reply: chat, private, joins, leaves. */
  function othersFrame(text) {
    if (text.includes('\n')) return false;
    let m = PRIVATE_RE.exec(text);
    if (m && m[2] === state.name) {
      // `[Q] -> me] x` is Q's chat message, not a private message from `Q]`.
      const chatSender = m[1].endsWith(']') ? m[1].slice(0, -1) : null;
      if (chatSender === null || !state.members.includes(chatSender)) {
        addPrivate('incoming', m[1], m[3], 'from', m[1]);
        return true;
      }
    }
    m = CHAT_RE.exec(text);
    if (m) {
      addToChannel('chat', m[1], m[2]);
      return true;
    }
    m = EVENT_RE.exec(text);
    if (m) {
      const who = m[1];
      if (m[2] === 'joined') {
        if (!state.members.includes(who)) state.members = [...state.members, who].sort(byCodePoint);
      } else {
        state.members = state.members.filter((x) => x !== who);
      }
      renderMembers();
      addToChannel('event', null, text);
      return true;
    }
    if (text === T.shutdown) {
      notice(text, 'warn');
      return true;
    }
    return false;
  }

  const byCodePoint = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

  function onlineFrame(text) {
    if (offlineFrame(text)) return;
    if (othersFrame(text)) return;
    if (state.pending.length > 0 && TIME_RE.test(text)) {
      const done = state.pending.shift();
      finish(done, text);
      return;
    }
    if (state.pending.length > 0) {
      state.pending[0].frames.push(text);
      return;
    }
    notice(text, 'system');
  }

  /** A command's reply is complete: show it. */
  function finish(req, timeText) {
    const frames = req.frames;
    const lines = () => replyLines(frames, null);
    const showLines = (kind) => {
      for (const line of lines()) notice(line, kind);
    };
    switch (req.kind) {
      case 'time':
        notice(timeText, 'system');
        return;
      case 'join':
      case 'create':
        if (frames.length === 0) {
          switchChannel(req.channel);
          if (!req.rejoin) notice(req.kind === 'create' ? `You created ${req.channel}.` : `You joined ${req.channel}.`, 'ok');
        } else {
          if (req.rejoin) {
            switchChannel(null);
            notice(`Could not join ${req.channel} again after reconnecting:`, 'error');
          }
          showLines('error');
        }
        return;
      case 'leave':
        if (frames.length === 0) {
          const left = state.channel;
          switchChannel(null);
          if (left !== null) notice(`You left ${left}.`, 'ok');
        } else {
          showLines('error');
        }
        return;
      case 'list': {
        const names = lines().filter((l) => l !== '');
        state.channels = names;
        renderChannels();
        if (!req.quiet) {
          addResult('Channels', names.length ? [list(names, (li, c) => { li.textContent = c; })]
            : [para('There are no channels.')]);
        }
        return;
      }
      case 'members': {
        const all = lines();
        const parsed = all.length === 1 ? parseMembers(all[0]) : parseMembers(all.join(''));
        if (parsed) {
          if (parsed.channel !== state.channel) switchChannel(parsed.channel);
          state.members = parsed.members;
          renderMembers();
          if (!req.quiet) addResult(`Members of ${parsed.channel}`, [list(parsed.members, (li, m) => { li.textContent = m; })]);
        } else {
          if (all.length === 1 && all[0] === T.notInChannel) {
            switchChannel(null);
            renderMembers();
          }
          if (!req.quiet) for (const line of all) notice(line, 'error');
        }
        return;
      }
      case 'who':
        addResult('Who is online', renderWho(replyLines(frames, whoLineStart)));
        return;
      case 'search':
        addResult(`Search: ${req.term}`, renderSearch(replyLines(frames, (l) => STAMP_RE.test(l))));
        return;
      case 'sonnet':
        addResult(`Sonnet ${req.number}`, renderSonnet(lines()));
        return;
      case 'help':
        addResult('Help', [list(lines(), (li, l) => { li.textContent = l; })]);
        return;
      case 'msg':
        if (frames.length > 0) {
          for (const line of lines()) addPrivate('system', null, line, null, null);
        }
        return;
      case 'register':
        if (frames.includes(T.nowRegistered(state.name))) state.password = req.secret;
        showLines('system');
        return;
      case 'chat':
        if (frames.length === 0 && state.channel !== null) {
          if (req.echo !== null) addToChannel('own', state.name, req.echo);
        } else {
          showLines('error');
        }
        return;
      default:
        showLines('system');
    }
  }

  function whoLineStart(line) {
    return line === T.whoUsers || line === T.whoGroups || /^\S+: /.test(line) || /^… and \d+ more$/.test(line);
  }

  function renderWho(lines) {
    const users = [];
    const groups = [];
    const other = [];
    let part = null;
    for (const line of lines) {
      if (line === T.whoUsers) part = users;
      else if (line === T.whoGroups) part = groups;
      else if (part) part.push(line);
      else other.push(line);
    }
    const out = [];
    out.push(para(`Users (${users.filter((l) => !l.startsWith('… and ')).length} shown)`, 'where'));
    out.push(list(users, (li, line) => {
      const cut = line.indexOf(': ');
      if (line.startsWith('… and ') || cut < 0) {
        li.textContent = line;
        return;
      }
      const channel = line.slice(cut + 2);
      li.append(span('sender', line.slice(0, cut)), document.createTextNode(channel === '-' ? ' — in no channel' : ` — in ${channel}`));
    }));
    out.push(para('Channels with members', 'where'));
    if (groups.length === 0) out.push(para('None.'));
    else {
      out.push(list(groups, (li, line) => {
        const cut = line.lastIndexOf(': ');
        if (cut < 0) {
          li.textContent = line;
          return;
        }
        li.append(span('where', line.slice(0, cut)), document.createTextNode(`: ${line.slice(cut + 2)}`));
      }));
    }
    for (const line of other) out.push(para(line));
    return out;
  }

  function renderSearch(lines) {
    const out = [];
    const found = [];
    for (const line of lines) {
      if (STAMP_RE.test(line)) found.push(line);
      else if (found.length > 0) found[found.length - 1] += `\n${line}`;
      else out.push(para(line));
    }
    if (found.length === 0) return out;
    out.push(list(found, (li, line) => {
      const stamp = STAMP_RE.exec(line);
      const rest = line.slice(stamp[0].length);
      li.append(span('stamp', stamp[1]), document.createTextNode(' '));
      const priv = /^(\S+) -> (\S+): ([\s\S]*)$/.exec(rest);
      const chan = /^\[([\s\S]*?)\] (\S+): ([\s\S]*)$/.exec(rest);
      if (chan && rest.startsWith('[')) {
        li.append(span('where', `in ${chan[1]}`), document.createTextNode(' '), span('sender', `${chan[2]}:`),
          document.createTextNode(' '), span('text', chan[3]));
      } else if (priv) {
        li.append(span('where', 'private'), document.createTextNode(' '), span('sender', `${priv[1]} → ${priv[2]}:`),
          document.createTextNode(' '), span('text', priv[3]));
      } else {
        li.append(span('text', rest));
      }
    }));
    return out;
  }

  function renderSonnet(lines) {
    if (lines.length > 1 && /^[IVXLC]+\.$/.test(lines[0])) {
      return [para(lines[0], 'where'), para(lines.slice(1).join('\n'), 'verse')];
    }
    return lines.map((l) => para(l));
  }

  // ---- Controls --------------------------------------------------------------------------------

  ui.loginForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (state.phase === 'password' && ui.loginName.value === state.name) {
      const pw = ui.loginPassword.value;
      if (pw === '') {
        ui.loginError.textContent = 'Enter the password.';
        return;
      }
      state.password = pw;
      ui.loginError.textContent = '';
      setStatus('connecting', 'Identifying…');
      sendRaw(`/identify ${pw}`);
      return;
    }
    const name = ui.loginName.value;
    if (name === '') {
      ui.loginError.textContent = 'Enter a name.';
      return;
    }
    if (byteLen(name) > FRAME_LEN) {
      ui.loginError.textContent = T.invalidName(name);
      return;
    }
    ui.loginError.textContent = '';
    if (name !== state.name) {
      state.password = null;
      state.channel = null;
      state.channels = [];
      state.members = [];
      logs.clear();
      ui.privateLog.replaceChildren();
      ui.results.replaceChildren();
    }
    state.name = name;
    state.everOnline = false;
    state.retryDelay = 0;
    if (state.ws) {
      state.ws.onclose = null;
      state.ws.close();
      state.ws = null;
    }
    connect();
  });

  ui.retryNow.addEventListener('click', () => {
    state.retryDelay = 0;
    connect();
  });

  ui.quit.addEventListener('click', () => submitLine('/quit'));
  ui.leave.addEventListener('click', () => submitLine('/leave'));
  ui.refreshChannels.addEventListener('click', () => submitLine('/list'));
  ui.who.addEventListener('click', () => submitLine('/who'));
  ui.members.addEventListener('click', () => submitLine('/members'));
  ui.help.addEventListener('click', () => submitLine('/help'));

  /** A form whose one input becomes a command; the input is cleared once it is sent. */
  function commandForm(form, input, build) {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const value = input.value;
      if (value.trim() === '') {
        input.focus();
        return;
      }
      if (submitLine(build(value))) input.value = '';
    });
  }

  commandForm(ui.createForm, ui.createName, (v) => `/create ${v}`);
  commandForm(ui.searchForm, ui.searchTerm, (v) => `/search ${v}`);
  commandForm(ui.sonnetForm, ui.sonnetNumber, (v) => `/sonnet ${v}`);
  commandForm(ui.registerForm, ui.registerPassword, (v) => `/register ${v}`);

  ui.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (submitLine(ui.composer.value)) ui.composer.value = '';
  });

  ui.msgForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const to = ui.msgTo.value.trim();
    const text = ui.msgText.value;
    if (to === '' || /\s/.test(to)) {
      ui.msgTo.focus();
      return;
    }
    if (text.trim() === '') {
      ui.msgText.focus();
      return;
    }
    if (submitLine(`/msg ${to} ${text}`)) ui.msgText.value = '';
  });

  showLogin('');
})();
