// Drives examples-c/chat_web in headless Chromium (Debian's chromium via
// playwright-core; no browser download):
//
//  1. two pages load the page from the server's one port and join;
//  2. each sees the other's messages (and its own: the server broadcasts
//     to every member);
//  3. one reloads and rejoins, and both talk again;
//  4. a third page starts a large message (its upload throttled) and is
//     closed mid-message: the server sees that member end without a close
//     frame (1006), the others keep talking, nobody gets a truncated
//     message, and a new page still loads and joins;
//  5. SIGTERM ends the server with status 0.
//
// usage: node chat_web.js PATH/TO/chat_web
// Needs NODE_PATH (or a node_modules next to it) holding playwright-core.
// Every wait is bounded; the server and the browser are stopped in all cases.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const STEP_MS = 10000;
const server_bin = process.argv[2];
if (!server_bin) {
  console.error('usage: node chat_web.js PATH/TO/chat_web');
  process.exit(2);
}

// Killed on any failure, so no server outlives the test.
let serverChild = null;

function log(...a) {
  console.log(`[${(process.uptime()).toFixed(2)}s]`, ...a);
}

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(server_bin, ['--host', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    serverChild = child;
    const stderr = [];
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => stderr.push(d));
    let out = '';
    const timer = setTimeout(() => reject(new Error('chat_web did not say where it listens within 10 s')), STEP_MS);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], stderr });
      }
    });
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`chat_web exited early (${code ?? sig}): ${stderr.join('')}`));
    });
  });
}

async function waitFor(what, fn, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function join(ctx, url, name) {
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP_MS);
  const resp = await page.goto(url);
  if (resp.status() !== 200) throw new Error(`${name}: GET ${url} answered ${resp.status()}`);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'connected');
  log(`${name} joined`);
  return page;
}

async function say(page, text) {
  await page.fill('#msg', text);
  await page.press('#msg', 'Enter');
}

function lines(page) {
  return page.$$eval('#log div', (ds) => ds.map((d) => d.textContent));
}

async function sees(page, name, text) {
  await waitFor(`${name} to see ${JSON.stringify(text)}`, async () => (await lines(page)).includes(text));
}

function alive(server) {
  return server.child.exitCode === null && server.child.signalCode === null;
}

async function main() {
  const t0 = Date.now();
  const server = await startServer();
  log(`server at ${server.url}`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'libws-chromium-'));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      timeout: 30000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    log(`chromium ${ctx.browser() ? ctx.browser().version() : '(persistent context)'} up`);

    // 1-2: two members, each sees the other's messages.
    const a = await join(ctx, server.url, 'A');
    const b = await join(ctx, server.url, 'B');
    await say(a, 'hello from A');
    await sees(b, 'B', 'hello from A');
    await sees(a, 'A', 'hello from A');
    await say(b, 'hello from B');
    await sees(a, 'A', 'hello from B');
    await sees(b, 'B', 'hello from B');
    // Text goes through as text, not markup.
    await say(a, '<b>not bold</b> & ünïcödé ✓');
    await sees(b, 'B', '<b>not bold</b> & ünïcödé ✓');
    if ((await b.$$('#log b')).length !== 0) throw new Error('a message was rendered as HTML');
    log('A and B see each other');

    // 3: A reloads and rejoins.
    await a.reload();
    await a.waitForFunction(() => document.getElementById('status').textContent === 'connected');
    if ((await lines(a)).length !== 0) throw new Error('the reloaded page kept its old log');
    await say(b, 'B after the reload');
    await sees(a, 'A', 'B after the reload');
    await say(a, 'A is back');
    await sees(b, 'B', 'A is back');
    log('A reloaded and rejoined');

    // 4: a page dies in the middle of sending a large message.
    const c = await join(ctx, server.url, 'C');
    const cdp = await ctx.newCDPSession(c);
    const leftBefore = server.stderr.join('').split('member left').length;
    // Slow C's upload so the message is still going out when the page
    // goes: then Chromium cannot send a close frame (it is inside a data
    // frame) and drops the connection mid-message.
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 64 * 1024,
    });
    await c.evaluate(() => {
      window.chat.send('x'.repeat(900 * 1024));
    });
    await new Promise((r) => setTimeout(r, 500));
    const pending = await c.evaluate(() => window.chat.bufferedAmount);
    if (!(pending > 0)) throw new Error('the message had gone out whole before the page closed');
    log(`C has ${pending} bytes of its message still to send; closing it`);
    await c.close().catch(() => {});
    await waitFor('the server to see C leave', async () => server.stderr.join('').split('member left').length > leftBefore);
    const cLeft = server.stderr.join('').split('\n').filter((l) => l.includes('member left')).pop();
    log(`C closed mid-message; server: "${cLeft}"`);
    if (!/close code 1006 /.test(cLeft)) throw new Error('C did not end mid-message (no 1006)');
    if (!alive(server)) throw new Error('chat_web died');
    await say(a, 'still here after C');
    await sees(b, 'B', 'still here after C');
    const d = await join(ctx, server.url, 'D');
    await say(d, 'hello from D');
    await sees(a, 'A', 'hello from D');
    await sees(b, 'B', 'hello from D');
    await sees(d, 'D', 'hello from D');
    // The big message went to nobody, or whole: never a truncated copy.
    for (const [p, n] of [[a, 'A'], [b, 'B']]) {
      const bad = (await lines(p)).filter((l) => l.startsWith('xxx') && l.length !== 900 * 1024);
      if (bad.length) throw new Error(`${n} got a truncated message`);
    }
    log('server survived; D joined and talks');

    // Plain HTTP next to the WebSocket: a missing page is 404.
    const r404 = await d.request.get(server.url + 'nothing-here');
    if (r404.status() !== 404) throw new Error(`GET /nothing-here answered ${r404.status()}`);
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }

  // 5: SIGTERM: graceful shutdown, status 0.
  const exited = new Promise((r) => server.child.on('exit', (code, sig) => r(code ?? sig)));
  server.child.kill('SIGTERM');
  const status = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
  if (status !== 0) {
    server.child.kill('SIGKILL');
    throw new Error(`chat_web ended with ${status} after SIGTERM`);
  }
  log('server log:\n' + server.stderr.join('').trimEnd());
  log(`browser test passed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error('browser test FAILED:', e && e.stack ? e.stack : e);
  if (serverChild && serverChild.exitCode === null) serverChild.kill('SIGKILL');
  process.exit(1);
});
