// End to end: the web client (web/) in headless Chromium against the real chat server.
//
// Two browser users and one terminal client (the real `client`, driven through a pipe) share a
// channel; the test checks on screen: messages with sender and time, joins, leaves, /who,
// /search, /sonnet, /help, private and offline messages, a refused and a registered login, a
// long line cut as the terminal client cuts it, markup shown as text, a reconnect after the
// server restarts on the same ports and data directory, and axe-core finding no violations.
//
// Environment:
//   CHAT_SERVER_BIN   the server binary (required); run as
//                     `server 0 --bind 127.0.0.1 --web-port 0 --data-dir DIR --sonnets FILE`
//   CHAT_CLIENT_BIN   the terminal client binary (required)
//   CHAT_SCREENSHOTS  where to save the screenshots (default: a new temporary directory)
//   CHAT_CHROMIUM     the browser (default /usr/bin/chromium, Debian's `chromium` package)
//
// Every wait has a timeout, and the whole run is bounded by TOTAL_MS. Exits 0 when every check
// passed, 1 with a message naming the failed check otherwise.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

const WAIT_MS = 10_000;
const RECONNECT_MS = 30_000;
const TOTAL_MS = 240_000;
const HOST = '127.0.0.1';
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

const children = new Set();
let passed = 0;
let browserContext = null;

// ---- Small helpers ---------------------------------------------------------------------------

class TestFailure extends Error {}

function fail(message) {
  throw new TestFailure(message);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function ok(step) {
  passed += 1;
  console.log(`ok ${passed} - ${step}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns something truthy, or fails with `what` after `ms`. */
async function until(what, probe, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

function requireEnv(name) {
  const value = process.env[name];
  if (!value) fail(`${name} is not set: it must name the ${name === 'CHAT_SERVER_BIN' ? 'server' : 'client'} binary (see the top of ${path.basename(import.meta.url)})`);
  if (!fs.existsSync(value)) fail(`${name}=${value} does not exist (build it with cargo build --bins)`);
  return value;
}

/** Collects a child's output as lines. */
class Lines {
  constructor(stream) {
    this.text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => { this.text += chunk; });
  }

  all() {
    return this.text.split('\n');
  }
}

// ---- The server ------------------------------------------------------------------------------

/**
 * Starts the server with a web port and waits for its two `Listening` lines. `port` and
 * `webPort` are 0 the first time (the OS picks) and the same numbers again for a restart.
 */
async function startServer({ port, webPort, dataDir, sonnets }) {
  const args = [String(port), '--bind', HOST, '--web-port', String(webPort),
    '--data-dir', dataDir, '--sonnets', sonnets];
  const proc = spawn(SERVER_BIN, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  children.add(proc);
  const out = new Lines(proc.stdout);
  const err = new Lines(proc.stderr);
  currentServer = { err };
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; children.delete(proc); });
  const addr = (re) => {
    for (const line of out.all()) {
      const m = re.exec(line);
      if (m) return { host: m[1], port: Number(m[2]) };
    }
    return null;
  };
  const listening = await until('the server to print "Listening on ADDR" and "Listening for web on ADDR"', () => {
    if (exited) {
      fail(`the server exited (${JSON.stringify(exited)}) before listening; its stderr:\n${err.text}`);
    }
    const tcp = addr(/^Listening on (.*):(\d+)$/);
    const web = addr(/^Listening for web on (.*):(\d+)$/);
    return tcp && web ? { tcp, web } : null;
  }, 15_000);
  return {
    proc, err,
    port: listening.tcp.port,
    webPort: listening.web.port,
    url: `http://${HOST}:${listening.web.port}/`,
    exited: () => exited,
  };
}

/** SIGTERM, then waits (bounded) for the exit; SIGKILL if it does not come. */
async function stopServer(server) {
  if (server.exited()) return server.exited();
  server.proc.kill('SIGTERM');
  try {
    await until('the server to exit after SIGTERM', () => server.exited(), 10_000);
  } catch (e) {
    server.proc.kill('SIGKILL');
    throw e;
  }
  return server.exited();
}

// ---- The terminal client ---------------------------------------------------------------------

/** The real `client`, its stdin a pipe; its output read back as the frames it printed. */
class Terminal {
  constructor(name, port) {
    this.name = name;
    this.proc = spawn(CLIENT_BIN, [name, HOST, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(this.proc);
    this.out = new Lines(this.proc.stdout);
    this.exit = null;
    this.proc.on('exit', (code, signal) => { this.exit = { code, signal }; children.delete(this.proc); });
    this.proc.stdin.on('error', () => {});
  }

  send(line) {
    this.proc.stdin.write(`${line}\n`);
  }

  /** The lines printed so far, without the prompt and the wipe before each frame. */
  lines() {
    return this.out.text.split('[Me] ').join('').split('\r    \r').join('').split('\n')
      .map((l) => l.replace(/\r$/, ''));
  }

  /** Waits until `line` has been printed `times` times in all. */
  async waitLine(line, what, times = 1, ms = WAIT_MS) {
    return until(`${what} (terminal ${this.name} to print ${JSON.stringify(line)}${times > 1 ? ` ${times} times` : ''})`,
      () => this.lines().filter((l) => l === line).length >= times, ms);
  }
}

// ---- The browser -------------------------------------------------------------------------------

/** Per page: every dialog (alert) that fired; a markup injection would fire one. */
const dialogs = [];
/** The open pages, by user, for the diagnosis of a failure. */
const pages = new Map();

/** Requests to anywhere but the chat server, and answers that were errors. */
const strayRequests = [];

async function newUserPage(label, origin) {
  const page = await browserContext.newPage();
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.protocol !== 'data:' && url.host !== origin) strayRequests.push(`${label}: ${request.url()}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) strayRequests.push(`${label}: ${response.status()} for ${response.url()}`);
  });
  await page.setViewportSize(DESKTOP);
  page.on('dialog', async (dialog) => {
    dialogs.push(`${label}: ${dialog.type()} ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (error) => {
    dialogs.push(`${label}: page error ${error.message}`);
  });
  page.setDefaultTimeout(WAIT_MS);
  pages.set(label, page);
  return page;
}

const statusOf = (page) => page.evaluate(() => ({
  state: document.getElementById('status').dataset.state,
  text: document.getElementById('status-text').textContent,
}));

async function waitOnline(page, who, ms = WAIT_MS) {
  await until(`${who} to be connected`, async () => (await statusOf(page)).state === 'online', ms);
}

async function login(page, url, name, who) {
  await page.goto(url, { timeout: WAIT_MS });
  await page.fill('#login-name', name);
  await page.click('#login-submit');
  await waitOnline(page, who);
}

async function say(page, text) {
  await page.fill('#composer', text);
  await page.press('#composer', 'Enter');
}

/** The messages shown in a log: kind, sender, text and time attribute of each. */
function messages(page, logId) {
  return page.evaluate((id) => [...document.querySelectorAll(`#${id} .msg`)].map((el) => ({
    cls: el.className,
    sender: el.querySelector('.sender')?.textContent ?? null,
    text: el.querySelector('.text')?.textContent ?? '',
    time: el.querySelector('time')?.getAttribute('datetime') ?? null,
  })), logId);
}

/** Waits for a message in log `logId` that `match` accepts; returns it. */
async function waitMessage(page, logId, what, match, ms = WAIT_MS) {
  return until(what, async () => (await messages(page, logId)).find(match) || null, ms);
}

function recent(time) {
  const t = Date.parse(time);
  return Number.isFinite(t) && Math.abs(Date.now() - t) < 120_000;
}

async function waitChat(page, who, sender, text) {
  const m = await waitMessage(page, 'log', `${who} to show ${sender}'s message ${JSON.stringify(text)}`,
    (x) => x.cls.includes('chat') && x.sender === sender && x.text === text);
  check(recent(m.time), `${who}: the message ${JSON.stringify(text)} has no time of arrival (${m.time})`);
  return m;
}

/** Waits until log `logId` holds `times` messages that `match` accepts. */
async function waitCount(page, logId, what, match, times) {
  return until(`${what}${times > 1 ? ` (${times} times)` : ''}`,
    async () => (await messages(page, logId)).filter(match).length >= times);
}

async function waitEvent(page, who, text, times = 1) {
  return waitCount(page, 'log', `${who} to show "${text}"`, (x) => x.cls.includes('event') && x.text === text, times);
}

async function waitNotice(page, who, text, logId = 'log', times = 1) {
  return waitCount(page, logId, `${who} to show ${JSON.stringify(text)}`, (x) => x.text === text, times);
}

/** The text of the newest results block whose heading is `title`. */
async function waitResult(page, who, title, mustContain) {
  return until(`${who}'s results to show "${title}" containing ${JSON.stringify(mustContain)}`, () => page.evaluate(([t, needles]) => {
    const block = [...document.querySelectorAll('#results article')].find((a) => a.querySelector('h4')?.textContent === t);
    if (!block) return null;
    const items = [...block.querySelectorAll('li, p')].map((e) => e.textContent);
    return needles.every((n) => items.some((i) => i.includes(n))) ? items : null;
  }, [title, mustContain]));
}

async function channelTitle(page) {
  return page.textContent('#channel-title');
}

async function waitChannel(page, who, channel, ms = WAIT_MS) {
  await until(`${who} to be in channel ${channel}`, async () => (await channelTitle(page)) === channel, ms);
}

async function members(page) {
  return page.evaluate(() => [...document.querySelectorAll('#member-list li')].map((li) => li.textContent));
}

let axeSource = null;

async function axe(page, where) {
  // The page's Content-Security-Policy forbids inline scripts, rightly: evaluate axe through
  // the DevTools protocol instead of a script tag (CSP does not apply there).
  if (!axeSource) axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5),
    }));
  });
  check(violations.length === 0, `axe found ${violations.length} violation(s) on ${where}:\n${JSON.stringify(violations, null, 2)}`);
}

async function screenshot(page, name, size) {
  await page.setViewportSize(size);
  await sleep(100);
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: size === PHONE });
  return file;
}

// ---- Fixtures --------------------------------------------------------------------------------

function roman(n) {
  const table = [[100, 'C'], [90, 'XC'], [50, 'L'], [40, 'XL'], [10, 'X'], [9, 'IX'], [5, 'V'], [4, 'IV'], [1, 'I']];
  let out = '';
  for (const [value, letters] of table) {
    while (n >= value) { out += letters; n -= value; }
  }
  return out;
}

const SONNET_1 = [
  'From fairest creatures we desire increase,',
  "That thereby beauty's rose might never die,",
  'But as the riper should by time decease,',
  'His tender heir might bear his memory:',
  'But thou, contracted to thine own bright eyes,',
  "Feed'st thy light's flame with self-substantial fuel,",
  'Making a famine where abundance lies,',
  'Thy self thy foe, to thy sweet self too cruel:',
  "Thou that art now the world's fresh ornament,",
  'And only herald to the gaudy spring,',
  'Within thine own bud buriest thy content,',
  "And tender churl mak'st waste in niggarding:",
  'Pity the world, or else this glutton be,',
  "To eat the world's due, by the grave and thee.",
];

/** A sonnets file in the ICS format: sonnet I for real, the other 153 as numbered lines. */
function writeSonnets(dir) {
  const parts = [];
  for (let n = 1; n <= 154; n++) {
    const lines = n === 1 ? SONNET_1 : Array.from({ length: 14 }, (_, i) => `Line ${i + 1} of sonnet ${n}.`);
    parts.push(`${roman(n)}.`, ...lines, '');
  }
  const file = path.join(dir, 'sonnets.txt');
  fs.writeFileSync(file, parts.join('\n'));
  return file;
}

const byteLen = (s) => Buffer.byteLength(s, 'utf8');

// ---- The test --------------------------------------------------------------------------------

/** The server running now, for the diagnosis of a failure. */
let currentServer = null;
/** The temporary directory of this run (data, profile, default screenshots); kept on failure. */
let workDir = null;
let SERVER_BIN;
let CLIENT_BIN;
let SHOTS;

async function main() {
  SERVER_BIN = requireEnv('CHAT_SERVER_BIN');
  CLIENT_BIN = requireEnv('CHAT_CLIENT_BIN');
  const chromiumPath = process.env.CHAT_CHROMIUM || '/usr/bin/chromium';
  check(fs.existsSync(chromiumPath), `no browser at ${chromiumPath}: install Debian's chromium package (scripts/setup.sh does: apt-get install -y chromium)`);
  let playwright;
  try {
    playwright = await import('playwright-core');
    require.resolve('axe-core/axe.min.js');
  } catch (e) {
    fail(`playwright-core or axe-core is missing: run npm ci in test_harness/browser (scripts/setup.sh does) (${e.message})`);
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-web-test-'));
  workDir = work;
  SHOTS = process.env.CHAT_SCREENSHOTS || path.join(work, 'screenshots');
  fs.mkdirSync(SHOTS, { recursive: true });
  const dataDir = path.join(work, 'data');
  const sonnets = writeSonnets(work);

  let server = await startServer({ port: 0, webPort: 0, dataDir, sonnets });
  ok(`server listening on ${HOST}:${server.port}, web on ${server.url}`);

  browserContext = await playwright.chromium.launchPersistentContext(path.join(work, 'chromium-profile'), {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_FLAGS,
    timeout: 30_000,
  });

  // The terminal user creates the channel.
  const carol = new Terminal('carol', server.port);
  carol.send('/create lobby');
  carol.send('/members');
  await carol.waitLine('Members of lobby: carol', 'carol in lobby');

  // Alice logs in with the keyboard only: Tab to the name, Enter to connect, Enter to send.
  const origin = `${HOST}:${server.webPort}`;
  const alice = await newUserPage('alice', origin);
  await alice.goto(server.url, { timeout: WAIT_MS });
  await alice.screenshot({ path: path.join(SHOTS, 'login-desktop.png') });
  await axe(alice, 'the login view (desktop)');
  ok('login view: no axe violations');
  const focused = () => alice.evaluate(() => document.activeElement?.id);
  check(await focused() === 'login-name', 'the name field does not have the focus when the page opens');
  await alice.keyboard.press('Tab');
  check(await focused() === 'login-submit', 'Tab from the name field does not reach Connect');
  await alice.keyboard.press('Shift+Tab');
  check(await focused() === 'login-name', 'Shift+Tab from Connect does not go back to the name field');
  const outline = await alice.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(outline !== 'none', 'the focused name field shows no focus outline');
  await alice.keyboard.type('alice');
  await alice.keyboard.press('Enter');
  await waitOnline(alice, 'alice');
  check(await alice.evaluate(() => document.activeElement?.id) === 'composer', 'after login the message box does not have the focus');
  ok('alice logs in with the keyboard; the focus moves to the message box');

  await until('alice to see lobby in the channel list', () => alice.isVisible('#channel-list button[aria-label="Join lobby"]'));
  await alice.click('#channel-list button[aria-label="Join lobby"]');
  await waitChannel(alice, 'alice', 'lobby');
  await carol.waitLine('alice has joined', 'alice joins lobby');
  ok('alice joins lobby from the channel list; carol sees it');

  const bob = await newUserPage('bob', origin);
  await login(bob, server.url, 'bob', 'bob');
  await say(bob, '/join lobby');
  await waitChannel(bob, 'bob', 'lobby');
  await waitEvent(alice, 'alice', 'bob has joined');
  await carol.waitLine('bob has joined', 'bob joins lobby');
  await until('bob to list the members of lobby', async () => {
    const m = await members(bob);
    return ['alice', 'bob (you)', 'carol'].every((x) => m.includes(x));
  });
  ok('bob joins with /join; alice and carol see it; bob lists the members');

  // Messages both ways, with sender and time.
  await alice.focus('#composer');
  await alice.keyboard.type('hello from alice');
  await alice.keyboard.press('Enter');
  await waitChat(bob, 'bob', 'alice', 'hello from alice');
  await carol.waitLine('[alice] hello from alice', 'alice\'s message');
  await waitMessage(alice, 'log', 'alice to show her own message', (x) => x.cls.includes('own') && x.text === 'hello from alice');
  carol.send('hi from carol');
  await waitChat(alice, 'alice', 'carol', 'hi from carol');
  await waitChat(bob, 'bob', 'carol', 'hi from carol');
  ok('messages between two browsers and a terminal, each shown with its sender and time');

  // Markup from others is text.
  const markup = '<img src=x onerror=alert(1)>';
  await say(bob, markup);
  await waitChat(alice, 'alice', 'bob', markup);
  carol.send(`${markup} <b>bold</b>`);
  await waitChat(alice, 'alice', 'carol', `${markup} <b>bold</b>`);
  await waitChat(bob, 'bob', 'carol', `${markup} <b>bold</b>`);
  await sleep(500);
  for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
    const injected = await page.evaluate(() => document.querySelectorAll('#log img, #log b, #private-log img').length);
    check(injected === 0, `${who}'s page made elements out of a message's markup`);
  }
  check(dialogs.length === 0, `a dialog fired or the page failed: ${dialogs.join('; ')}`);
  ok('a message with <img onerror> shows as text; no dialog fires');

  // A long line is cut as the terminal client cuts it: at word boundaries, with room for
  // "[alice] ", so the server relays each piece whole.
  const words = Array.from({ length: 80 }, (_, i) => (i % 9 === 4 ? '/join' : i % 5 === 0 ? `naïve${i}` : `word${i}`));
  const long = words.join(' ');
  check(byteLen(long) > 400, 'the long line is not long');
  await say(alice, long);
  const pieces = await until('carol to receive the whole long line', () => {
    const got = carol.lines().filter((l) => l.startsWith('[alice] ') && !l.includes('hello')).map((l) => l.slice('[alice] '.length));
    return got.join('') === long ? got : null;
  });
  check(pieces.length >= 3, `the long line came in ${pieces.length} pieces`);
  pieces.forEach((p, i) => {
    check(byteLen(`[alice] ${p}`) <= 200, `piece ${i} is longer than a frame`);
    check(!p.startsWith('/'), `piece ${i} starts with /`);
    if (i > 0) check(p.startsWith(' '), `piece ${i} is not cut at a word boundary: ${JSON.stringify(p.slice(0, 20))}`);
  });
  await waitChat(bob, 'bob', 'alice', pieces[pieces.length - 1]);
  await say(alice, `/join ${'c'.repeat(300)}`);
  await waitNotice(alice, 'alice', 'Command too long: at most 200 bytes.');
  ok(`a ${byteLen(long)}-byte line goes out as ${pieces.length} pieces cut at word boundaries; a long /join is refused`);

  // Errors, leave, create, join.
  await say(bob, '/join nowhere');
  await waitNotice(bob, 'bob', "No channel named nowhere exists. Try '/create nowhere'?");
  check(await channelTitle(bob) === 'lobby', 'a failed /join changed bob\'s channel');
  await bob.click('#leave');
  await waitEvent(alice, 'alice', 'bob has left');
  await carol.waitLine('bob has left', 'bob leaves');
  await waitChannel(bob, 'bob', 'No channel');
  check(!(await members(alice)).includes('bob'), 'alice still lists bob as a member after he left');
  await bob.fill('#create-name', 'side room');
  await bob.press('#create-name', 'Enter');
  await waitChannel(bob, 'bob', 'side room');
  await until('bob to list side room', () => bob.isVisible('#channel-list button[aria-current="true"]'));
  await bob.click('#channel-list button[aria-label="Join lobby"]');
  await waitChannel(bob, 'bob', 'lobby');
  await carol.waitLine('bob has joined', 'bob is back', 2);
  await waitEvent(alice, 'alice', 'bob has joined', 2);
  ok('a failed /join, Leave, Create and Join again show for everyone');

  // /who, /search, /sonnet, /help.
  await alice.click('#who');
  await waitResult(alice, 'alice', 'Who is online', ['alice — in lobby', 'bob — in lobby', 'carol — in lobby', 'lobby: alice, bob, carol']);
  await bob.fill('#search-term', 'hello');
  await bob.press('#search-term', 'Enter');
  await waitResult(bob, 'bob', 'Search: hello', ['in lobby alice: hello from alice']);
  await say(bob, '/search nothingmatchesthis');
  await waitResult(bob, 'bob', 'Search: nothingmatchesthis', ["'nothingmatchesthis' not found"]);
  await alice.fill('#sonnet-number', '1');
  await alice.press('#sonnet-number', 'Enter');
  await waitResult(alice, 'alice', 'Sonnet 1', ['I.', SONNET_1[0]]);
  await alice.click('#help');
  await waitResult(alice, 'alice', 'Help', ['Commands:', '/msg NAME TEXT']);
  ok('/who, /search (found and not found), /sonnet and /help show in the results');

  // Private messages, apart from the channel.
  await alice.fill('#msg-to', 'bob');
  await alice.fill('#msg-text', 'a secret for bob');
  await alice.press('#msg-text', 'Enter');
  await waitMessage(bob, 'private-log', 'bob to get alice\'s private message', (x) => x.sender === 'alice' && x.text === 'a secret for bob');
  check(!(await messages(bob, 'log')).some((x) => x.text.includes('a secret for bob')), 'the private message shows in bob\'s channel log');
  check(!carol.lines().some((l) => l.includes('a secret for bob')), 'carol saw the private message');
  carol.send('/msg alice psst from carol');
  await waitMessage(alice, 'private-log', 'alice to get carol\'s private message', (x) => x.sender === 'carol' && x.text === 'psst from carol');
  const longPrivate = Array.from({ length: 45 }, (_, i) => `secret${i}`).join(' ');
  await say(alice, `/msg bob ${longPrivate}`);
  await until('bob to get the long private message in pieces', async () => {
    const got = (await messages(bob, 'private-log')).filter((x) => x.sender === 'alice' && x.text.startsWith('secret'));
    return got.map((x) => x.text).join(' ') === longPrivate && got.length >= 2;
  });
  await say(alice, '/msg nobody-here hello');
  await waitNotice(alice, 'alice', 'No user named nobody-here exists.', 'private-log');
  ok('private messages (also a long one, cut) show apart; an unknown name is reported');

  // A registered name.
  await alice.fill('#register-password', 'correct horse');
  await alice.press('#register-password', 'Enter');
  await waitNotice(alice, 'alice', 'Name alice is now registered.');
  ok('alice registers her name');

  await screenshot(alice, 'chat-desktop', DESKTOP);
  await axe(alice, 'the chat view (desktop)');
  await screenshot(alice, 'chat-phone', PHONE);
  await axe(alice, 'the chat view (phone)');
  await alice.setViewportSize(DESKTOP);
  ok('chat view: no axe violations at desktop and phone widths; screenshots saved');

  // The server restarts on the same ports and data directory: the pages retry and come back.
  const { port, webPort } = server;
  await stopServer(server);
  for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
    await until(`${who} to show "Disconnected — retrying"`, async () => {
      const s = await statusOf(page);
      return s.state === 'retrying' && s.text.startsWith('Disconnected — retrying');
    });
  }
  await carol.waitLine(`Server at ${HOST}:${port} has disconnected`, 'the terminal sees the server go');
  await until('the terminal client to exit', () => carol.exit);
  check(carol.exit.code !== 0, 'the terminal client exited 0 when the server went away');
  await screenshot(bob, 'retrying-desktop', DESKTOP);
  ok('server stopped: both pages show "Disconnected — retrying"');

  server = await startServer({ port, webPort, dataDir, sonnets });
  await waitOnline(alice, 'alice to reconnect', RECONNECT_MS);
  await waitOnline(bob, 'bob to reconnect', RECONNECT_MS);
  for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
    await until(`${who} to be in lobby again`, async () => {
      const refused = (await messages(page, 'log')).find((m) => m.text.startsWith('No channel named lobby exists'));
      if (refused) fail(`${who} could not rejoin lobby after the restart: "${refused.text}" (channels must survive a restart of the server)`);
      return (await channelTitle(page)) === 'lobby';
    });
  }
  await waitNotice(alice, 'alice', 'You are now identified as alice.');
  await until('both back in lobby on the server', async () => {
    const a = await members(alice);
    const b = await members(bob);
    return a.includes('bob') && b.includes('alice');
  });
  await say(alice, 'after the restart');
  await waitChat(bob, 'bob', 'alice', 'after the restart');
  ok('after the restart both pages log in again (alice identifies), rejoin lobby and chat');

  // Offline delivery, to a terminal and to a page.
  await say(alice, '/msg carol see you later');
  await waitNotice(alice, 'alice', 'carol is offline; the message will be delivered when carol connects.', 'private-log');
  const carol2 = new Terminal('carol', server.port);
  await carol2.waitLine('You have 1 offline message:', 'carol\'s offline delivery');
  await until('carol to get alice\'s offline message', () => carol2.lines().some((l) => /^\(\d\d\.\d\d\.\d\d,\d\d:\d\d\) \[alice -> carol\] see you later$/.test(l)));
  await bob.click('#quit');
  await until('bob to be logged out', async () => (await statusOf(bob)).text === 'Disconnected: you left the chat.' && await bob.isVisible('#login-name'));
  await waitEvent(alice, 'alice', 'bob has left', 2);
  await say(alice, '/msg bob while you were out');
  await waitNotice(alice, 'alice', 'bob is offline; the message will be delivered when bob connects.', 'private-log');

  // Refused logins on bob's page, then bob again.
  await bob.fill('#login-name', 'alice');
  await bob.click('#login-submit');
  await until('bob\'s page to refuse the name alice', async () => (await bob.textContent('#login-error')) === 'Name alice is already in use. Send another name.');
  await bob.fill('#login-name', 'bad name');
  await bob.press('#login-name', 'Enter');
  await until('bob\'s page to refuse "bad name"', async () => (await bob.textContent('#login-error')) === 'Invalid name bad name: a name is 1 to 32 characters without spaces.');
  await screenshot(bob, 'login-error-phone', PHONE);
  await axe(bob, 'the login view with an error (phone)');
  await bob.setViewportSize(DESKTOP);
  await bob.fill('#login-name', 'bob');
  await bob.press('#login-name', 'Enter');
  await waitOnline(bob, 'bob');
  await waitMessage(bob, 'private-log', 'bob to get his offline message', (x) => x.cls.includes('offline') && x.sender === 'alice' && x.text === 'while you were out');
  await waitNotice(bob, 'bob', 'You have 1 offline message:', 'private-log');
  ok('offline messages reach a terminal and a page; refused names show the server\'s text');

  // A registered name logs in with the password field.
  await alice.click('#quit');
  await until('alice to be logged out', async () => alice.isVisible('#login-name'));
  await alice.fill('#login-name', 'alice');
  await alice.press('#login-name', 'Enter');
  await until('alice\'s page to ask for the password', () => alice.isVisible('#login-password'));
  const hint = await alice.textContent('#login-password-hint');
  check(/^alice is a registered name\. Send \/identify PASSWORD within \d+ seconds\.$/.test(hint), `the password hint is ${JSON.stringify(hint)}`);
  await axe(alice, 'the login view asking for a password (desktop)');
  await alice.fill('#login-password', 'wrong password');
  await alice.press('#login-password', 'Enter');
  await until('alice\'s page to say the password is wrong', async () => (await alice.textContent('#login-error')) === 'Wrong password for alice.');
  await alice.fill('#login-password', 'correct horse');
  await alice.press('#login-password', 'Enter');
  await waitOnline(alice, 'alice');
  await waitNotice(alice, 'alice', 'You are now identified as alice.');
  ok('a registered name: the page asks for the password, shows a wrong one, identifies');

  check(dialogs.length === 0, `a dialog fired or the page failed: ${dialogs.join('; ')}`);
  check(strayRequests.length === 0, `the page asked for something other than the chat server's own files: ${strayRequests.join('; ')}`);
  ok('the pages loaded nothing but the chat server\'s own files, none missing');
  carol2.proc.stdin.end();
  await until('the second terminal client to exit', () => carol2.exit);
  await stopServer(server);
  ok(`screenshots in ${SHOTS}`);
  return work;
}

/** On a failure: the server's last log lines, each page's status and last messages, and a
 * screenshot of each page. */
async function diagnose() {
  if (currentServer) {
    const tail = currentServer.err.text.split('\n').slice(-15).join('\n');
    console.error(`server stderr (last lines):\n${tail}`);
  }
  for (const [who, page] of pages) {
    try {
      const s = await statusOf(page);
      const tail = (await messages(page, 'log')).slice(-8).map((m) => `  [${m.cls}] ${m.sender ?? ''} ${m.text}`);
      const priv = (await messages(page, 'private-log')).slice(-4).map((m) => `  [${m.cls}] ${m.sender ?? ''} ${m.text}`);
      console.error(`${who}: status ${s.state} "${s.text}"; login error "${await page.textContent('#login-error')}"`);
      console.error(`${who}: last messages:\n${tail.join('\n')}\n${who}: last private messages:\n${priv.join('\n')}`);
      if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `failure-${who}.png`) });
    } catch (e) {
      console.error(`${who}: no diagnosis (${e.message})`);
    }
  }
}

async function cleanup() {
  if (browserContext) await browserContext.close().catch(() => {});
  // SIGTERM first (the server then commits its state and exits), SIGKILL what is left.
  for (const child of children) child.kill('SIGTERM');
  const deadline = Date.now() + 3000;
  while (children.size > 0 && Date.now() < deadline) await sleep(50);
  for (const child of children) child.kill('SIGKILL');
}

const watchdog = setTimeout(async () => {
  console.error(`FAIL: the test did not finish within ${TOTAL_MS / 1000} s`);
  console.log(`${passed} passed, 1 failed`);
  await cleanup();
  process.exit(1);
}, TOTAL_MS);

try {
  const work = await main();
  await cleanup();
  // Keep the screenshots when they were saved inside the work directory.
  if (process.env.CHAT_SCREENSHOTS) fs.rmSync(work, { recursive: true, force: true });
  clearTimeout(watchdog);
  console.log(`${passed} passed, 0 failed`);
  process.exit(0);
} catch (error) {
  console.error(`FAIL: ${error instanceof TestFailure ? error.message : error.stack || error}`);
  await diagnose();
  await cleanup();
  if (workDir) console.error(`kept for inspection: ${workDir}`);
  clearTimeout(watchdog);
  console.log(`${passed} passed, 1 failed`);
  process.exit(1);
}
