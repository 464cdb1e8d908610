#!/usr/bin/env node
// Browser check of the GraphiQL playground served by usergraph at GET /graphql:
// it must render with NO request leaving the server's origin (no CDN, no web
// fonts, nothing), and its run button must reach POST /graphql.
//
// Usage: node scripts/graphiql-offline-check.mjs BASE_URL [SCREENSHOT.png] [--no-run]
//   e.g. node scripts/graphiql-offline-check.mjs http://127.0.0.1:8080 /tmp/graphiql.png
//
// Needs playwright-core (a devDependency in graphiql/package.json: run
// scripts/build-graphiql.sh or `npm ci` in graphiql/ first) and Chromium at
// /usr/bin/chromium (Debian: apt-get install -y chromium; override with
// CHROMIUM=/path). Exit 0 and a one-line PASS summary on success, 1 with the
// reasons on failure, 2 on bad usage.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const USAGE = 'usage: node scripts/graphiql-offline-check.mjs http://127.0.0.1:PORT [screenshot.png] [--no-run]';
const argv = process.argv.slice(2);
if (argv.includes('-h') || argv.includes('--help')) {
  console.log(USAGE);
  process.exit(0);
}
const runQuery = !argv.includes('--no-run');
const positional = argv.filter((a) => !a.startsWith('--'));
if (positional.length < 1 || positional.length > 2 || argv.some((a) => a.startsWith('--') && a !== '--no-run')) {
  console.error(USAGE);
  process.exit(2);
}

let base;
try {
  base = new URL(positional[0]);
  if (!/^https?:$/.test(base.protocol)) throw new Error('not http(s)');
} catch {
  console.error(`graphiql-offline-check: not an http(s) URL: ${positional[0]}\n${USAGE}`);
  process.exit(2);
}
const origin = base.origin;
const pageUrl = `${origin}/graphql`;
const screenshot = path.resolve(positional[1] || path.join(tmpdir(), 'graphiql-offline-check.png'));
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env.GRAPHIQL_CHECK_TIMEOUT_MS || 30000);

if (!existsSync(executablePath)) {
  console.error(`graphiql-offline-check: no Chromium at ${executablePath} (apt-get install -y chromium)`);
  process.exit(1);
}

// playwright-core lives in graphiql/node_modules, next to this script's folder.
const require = createRequire(new URL('../graphiql/package.json', import.meta.url));
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch {
  console.error('graphiql-offline-check: playwright-core is not installed: run scripts/build-graphiql.sh (or npm ci in graphiql/)');
  process.exit(1);
}

// Same origin, or a WebSocket to the same host:port (ws: for http:, wss: for https:).
function isSameOrigin(raw) {
  let u;
  try { u = new URL(raw); } catch { return false; }
  if (u.protocol === 'data:' || u.protocol === 'blob:' || u.protocol === 'about:') return true;
  if (u.origin === origin) return true;
  const wsProto = base.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.protocol === wsProto && u.host === base.host;
}

// Keep messages readable: CSP reports quote whole data: URIs.
const clip = (s, n = 300) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);
// At most `n` lines of a list, then a count of the rest.
const list = (arr, n = 8) => arr.slice(0, n).join('\n  ') + (arr.length > n ? `\n  … and ${arr.length - n} more` : '');
const requests = [];        // every request the browser made: "METHOD url"
const offOrigin = [];       // those that would have left the origin (blocked)
const failures = [];        // same-origin requests that failed or answered >= 400
const pageErrors = [];      // uncaught exceptions
const cspErrors = [];       // CSP violations reported on the console
const consoleErrors = [];   // other console errors (reported, not fatal)
const started = Date.now();

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});

let status = 1;
let graphqlStatus = null;
let page = null;
try {
  const context = await browser.newContext({
    viewport: { width: 1400, height: 900 },
    serviceWorkers: 'block',
  });
  // Never let anything leave the origin: record it, then abort it.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (isSameOrigin(url)) return route.continue();
    return route.abort('blockedbyclient');
  });
  context.on('request', (req) => {
    const url = req.url();
    requests.push(`${req.method()} ${clip(url, 200)}`);
    if (!isSameOrigin(url)) offOrigin.push(`${req.method()} ${clip(url, 200)}`);
  });
  context.on('requestfailed', (req) => {
    if (isSameOrigin(req.url()) && !req.url().startsWith('data:')) {
      failures.push(`${req.method()} ${req.url()} failed: ${req.failure()?.errorText}`);
    }
  });
  context.on('response', (res) => {
    if (res.status() >= 400 && isSameOrigin(res.url())) {
      failures.push(`${res.request().method()} ${res.url()} -> HTTP ${res.status()}`);
    }
  });

  page = await context.newPage();
  page.on('websocket', (ws) => {
    requests.push(`WS ${ws.url()}`);
    if (!isSameOrigin(ws.url())) offOrigin.push(`WS ${ws.url()}`);
  });
  page.on('pageerror', (err) => pageErrors.push(clip(String(err && err.message || err))));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    (/Content Security Policy/i.test(text) ? cspErrors : consoleErrors).push(clip(text));
  });

  // A normal navigation: Chromium sends Accept: text/html,... itself.
  const nav = await page.goto(pageUrl, { waitUntil: 'load', timeout: TIMEOUT_MS });
  if (!nav) throw new Error(`no response for ${pageUrl}`);
  if (nav.status() !== 200) throw new Error(`GET ${pageUrl} answered HTTP ${nav.status()}`);
  const ctype = nav.headers()['content-type'] || '';
  if (!ctype.includes('text/html')) throw new Error(`GET ${pageUrl} answered content-type "${ctype}", not text/html`);
  const csp = nav.headers()['content-security-policy'] || '';

  // Rendered: the container, the query editor (CodeMirror) with our text, the run button.
  await page.locator('.graphiql-container').waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  await page.locator('.graphiql-query-editor .CodeMirror').first().waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const runButton = page.locator('.graphiql-execute-button');
  await runButton.waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const title = await page.title();

  if (runQuery) {
    const isRun = (res) => res.url() === `${origin}/graphql` && res.request().method() === 'POST' &&
      !String(res.request().postData() || '').includes('IntrospectionQuery');
    const [res] = await Promise.all([
      page.waitForResponse(isRun, { timeout: TIMEOUT_MS }),
      runButton.click(),
    ]);
    graphqlStatus = res.status();
    // The response pane shows the answer.
    await page.waitForFunction(() => {
      const el = document.querySelector('.graphiql-response .CodeMirror');
      return el && /"(data|errors)"/.test(el.textContent || '');
    }, null, { timeout: TIMEOUT_MS });
  }
  // Let late requests (fonts, lazy chunks) show up before judging.
  await page.waitForLoadState('networkidle', { timeout: TIMEOUT_MS }).catch(() => {});
  await page.screenshot({ path: screenshot });

  const problems = [];
  if (offOrigin.length) problems.push(`${offOrigin.length} request(s) to another origin:\n  ${offOrigin.join('\n  ')}`);
  if (failures.length) problems.push(`failed same-origin request(s):\n  ${list(failures)}`);
  if (pageErrors.length) problems.push(`page error(s):\n  ${list(pageErrors)}`);
  if (cspErrors.length) problems.push(`CSP violation(s):\n  ${list(cspErrors)}`);
  if (!title.includes('GraphiQL')) problems.push(`unexpected page title: ${JSON.stringify(title)}`);

  if (problems.length) {
    console.error(`FAIL ${pageUrl}\n${problems.join('\n')}\nall requests:\n  ${requests.join('\n  ')}\nscreenshot: ${screenshot}`);
  } else {
    const other = consoleErrors.length ? `, ${consoleErrors.length} other console error(s)` : '';
    console.log(`PASS ${pageUrl}: GraphiQL rendered ("${title}"), ${requests.length} requests all same-origin` +
      `${runQuery ? `, run -> POST /graphql HTTP ${graphqlStatus}` : ''}` +
      `, CSP ${csp ? 'header set' : 'header absent'}${other}, ${Date.now() - started} ms, screenshot ${screenshot}`);
    if (consoleErrors.length) console.error(`console errors:\n  ${list(consoleErrors)}`);
    status = 0;
  }
} catch (err) {
  console.error(`FAIL ${pageUrl}: ${err && err.message || err}`);
  if (offOrigin.length) console.error(`request(s) to another origin:\n  ${offOrigin.join('\n  ')}`);
  if (failures.length) console.error(`failed same-origin request(s):\n  ${list(failures)}`);
  if (pageErrors.length) console.error(`page error(s):\n  ${list(pageErrors)}`);
  if (cspErrors.length) console.error(`CSP violation(s):\n  ${list(cspErrors)}`);
  if (consoleErrors.length) console.error(`console error(s):\n  ${list(consoleErrors)}`);
  console.error(`all requests:\n  ${requests.join('\n  ') || '(none)'}`);
  if (page) {
    await page.screenshot({ path: screenshot }).then(() => console.error(`screenshot: ${screenshot}`), () => {});
  }
} finally {
  await browser.close();
}
process.exit(status);
