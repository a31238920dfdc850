// CORS in a real browser: headless Chromium (Debian's, driven by playwright-core) loads a
// page from another origin that calls the functions with supabase-js's browser bundle.
// From the allowed origin the calls succeed and a bad JWT is a 401 the page can read;
// from an origin that is not allowed the browser itself blocks the answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { anonKey, env, newUser, pageOrigin, userJwt } from '../lib/world.js';

const here = new URL('..', import.meta.url).pathname;
let server;
let context;
let userDataDir;

/** A tiny static server: the page (with its configuration) and supabase-js's UMD bundle. */
async function startPageServer(config) {
  const html = await readFile(join(here, 'page/index.html'), 'utf8');
  const bundle = await readFile(join(here, 'node_modules/@supabase/supabase-js/dist/umd/supabase.js'));
  const page = html.replace(
    '<script type="module">',
    `<script type="application/json" id="config">${JSON.stringify(config)}</script>\n  <script type="module">`,
  );
  const pageServer = createServer((request, response) => {
    const path = new URL(request.url, 'http://page').pathname;
    if (path === '/' || path === '/index.html') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(page);
    } else if (path === '/supabase.js') {
      response.writeHead(200, { 'content-type': 'text/javascript' });
      response.end(bundle);
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => pageServer.listen(env.pagePort, '127.0.0.1', resolve));
  return pageServer;
}

async function resultsOf(url) {
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (message) => consoleLines.push(message.text()));
  await page.goto(url);
  await page.waitForFunction(() => window.e2eResults !== undefined, null, { timeout: 30_000 });
  const results = await page.evaluate(() => window.e2eResults);
  await page.close();
  return { results, consoleLines };
}

before(async () => {
  const user = await newUser();
  server = await startPageServer({
    baseUrl: env.baseUrl,
    anonKey: await anonKey(),
    userJwt: user.jwt,
    badJwt: await userJwt(user.id, { secret: 'a-secret-that-is-not-the-projects-secret' }),
  });
  userDataDir = await mkdtemp(join(tmpdir(), 'voice-edge-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: env.chromium,
    headless: true,
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
});

after(async () => {
  await context?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
});

test('from the allowed origin, supabase-js in Chromium gets a token and reads a bad JWT as 401', async () => {
  const { results, consoleLines } = await resultsOf(`${pageOrigin}/`);
  assert.equal(results.thrown, undefined, results.thrown);

  assert.equal(results.guide.ok, true, JSON.stringify(results.guide));
  assert.equal(results.guide.data.persona, 'demo-guide');
  assert.match(results.guide.data.token, /^ek_/);

  assert.equal(results.badJwt.ok, false);
  assert.equal(results.badJwt.kind, 'FunctionsHttpError', JSON.stringify(results.badJwt));
  assert.equal(results.badJwt.status, 401);
  // The page reading the body at all is the proof that Access-Control-Allow-Origin named
  // it: the header itself is not exposed to scripts (it is not CORS-safelisted).
  assert.deepEqual(results.badJwt.body, { code: 401, message: 'Invalid JWT', error: 'invalid_jwt' });

  assert.equal(results.activities.ok, true, JSON.stringify(results.activities));
  assert.ok(results.activities.data.activities.length > 0);
  assert.ok(!consoleLines.some((line) => /CORS/i.test(line)), consoleLines.join('\n'));
});

test('from an origin that is not allowed, the browser blocks the answers (FunctionsFetchError)', async () => {
  // The same server under another name is another origin, outside allowed_origins.
  const { results, consoleLines } = await resultsOf(`http://localhost:${env.pagePort}/`);
  assert.equal(results.thrown, undefined, results.thrown);
  for (const name of ['guide', 'badJwt', 'activities']) {
    assert.equal(results[name].ok, false, `${name}: ${JSON.stringify(results[name])}`);
    assert.equal(results[name].kind, 'FunctionsFetchError', `${name}: ${JSON.stringify(results[name])}`);
  }
  assert.ok(consoleLines.some((line) => /CORS/i.test(line)), 'Chromium reports the CORS refusal');
});
