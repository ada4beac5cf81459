// The web page's line cutting (web/app.js, chatLines), run in Node: exact pieces for the rules
// of the terminal client (PROTOCOL.md section 4), which leave room for the prefix the server
// adds, so that the server never cuts a typed line again.
//
// Run: node --test test_harness/browser/split.test.mjs (needs nothing but Node).

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import vm from 'node:vm';

const source = fs.readFileSync(new URL('../../web/app.js', import.meta.url), 'utf8');
const lines = vm.runInNewContext(`${source}\n;chatLines`, { TextEncoder });
const { byteLen } = lines;
// Its objects come from another realm: copy them into this one for deepEqual.
const planLine = (line, me) => JSON.parse(JSON.stringify(lines.planLine(line, me)));

const frames = (line, me = 'al') => {
  const plan = planLine(line, me);
  assert.ok(plan.frames, `not sent: ${JSON.stringify(plan)}`);
  return plan.frames;
};
const x = (c, n) => c.repeat(n);

test('a line that fits with its prefix is sent as typed, less its padding', () => {
  assert.deepEqual(frames('hi'), ['hi']);
  assert.deepEqual(frames('  indented'), ['  indented']);
  assert.deepEqual(frames('trailing   \t'), ['trailing']);
  assert.deepEqual(frames(x('a', 195)), [x('a', 195)]); // "[al] " + 195 = 200 bytes
  assert.deepEqual(frames('/create x'), ['/create x']);
});

test('empty lines are not sent', () => {
  assert.deepEqual(planLine('', 'al'), { skip: true });
  assert.deepEqual(planLine('   \t', 'al'), { skip: true });
});

test('a long chat line is cut before the last whitespace that fits', () => {
  assert.deepEqual(frames(`${x('a', 100)} ${x('b', 100)}`), [x('a', 100), ` ${x('b', 100)}`]);
  assert.deepEqual(frames(`${x('a', 190)} /cmd rest`), [`${x('a', 190)} /cmd`, ' rest']);
});

test('a word longer than a frame is cut where it must, never before a slash', () => {
  assert.deepEqual(frames(x('x', 300)), [x('x', 195), x('x', 105)]);
  assert.deepEqual(frames(`${x('x', 195)}/${x('y', 50)}`), [x('x', 194), `x/${x('y', 50)}`]);
  assert.deepEqual(frames(`a${x('/', 400)}`), [`a${x('/', 194)}`, ` ${x('/', 194)}`, ` ${x('/', 12)}`]);
});

test('the room left depends on the name', () => {
  const name = x('é', 32); // 64 bytes: "[éé…] " is 67
  const got = frames(x('z', 200), name);
  assert.deepEqual(got, [x('z', 133), x('z', 67)]);
});

test('multibyte text is cut at character boundaries', () => {
  const line = x('é', 250);
  const got = frames(line);
  assert.deepEqual(got.map((f) => byteLen(f)), [194, 194, 112]);
  assert.equal(got.join(''), line);
  const emoji = x('😀', 60);
  assert.equal(frames(emoji).join(''), emoji);
  assert.ok(frames(emoji).every((f) => byteLen(f) <= 195));
});

test('pieces of nothing but padding are dropped', () => {
  assert.deepEqual(frames(`a${x(' ', 450)}b`), ['a', `${x(' ', 60)}b`]);
});

test('a long /msg becomes several /msg NAME commands with room for [SENDER -> NAME]', () => {
  // room = min(200 - "/msg Bob ".length, 200 - "[al -> Bob] ".length) = 188
  const z = `/msg Bob ${x('z', 188)}`;
  assert.deepEqual(frames(`/msg Bob ${x('z', 400)}`), [z, z, `/msg Bob ${x('z', 24)}`]);
  // Fits in a frame, but the delivered "[al -> Bob] …" would not.
  assert.deepEqual(frames(`/msg Bob ${x('z', 189)}`), [`/msg Bob ${x('z', 188)}`, '/msg Bob z']);
  assert.deepEqual(frames(`/msg Bob ${x('z', 188)}`), [`/msg Bob ${x('z', 188)}`]);
});

test('a long /msg is cut at word boundaries and loses no word', () => {
  const words = Array.from({ length: 60 }, (_, i) => `word${String(i).padStart(2, '0')}`);
  const got = frames(`/msg  Bob   ${words.join(' ')} `);
  assert.equal(got.length, 3);
  for (const f of got) {
    assert.ok(f.startsWith('/msg Bob '));
    assert.ok(byteLen(f) <= 200);
  }
  const pieces = got.map((f) => f.slice('/msg Bob '.length).trim());
  assert.equal(pieces.join(' '), words.join(' '));
});

test('other long commands are refused', () => {
  assert.deepEqual(planLine(`/join ${x('c', 300)}`, 'al'), { tooLong: true });
  assert.deepEqual(planLine(`/msg ${x('n', 300)}`, 'al'), { tooLong: true });
  assert.deepEqual(planLine(`/msg ${x('n', 300)} hi`, 'al'), { tooLong: true });
  assert.deepEqual(planLine(`/msgx Bob ${x('z', 300)}`, 'al'), { tooLong: true });
});
