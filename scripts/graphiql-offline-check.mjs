#!/usr/bin/env node
// Browser test of the GraphiQL playground served by usergraph at GET /graphql,
// in headless Chromium. It passes when, with NO request leaving the server's
// origin (no CDN, no web fonts, nothing) and no page error or CSP violation:
//   1. the page renders and GraphiQL's introspection POST /graphql answers
//      200 with data.__schema and no errors;
//   2. the Docs button opens the documentation explorer, and the root `Query`
//      type lists the fields me, user, roles and role;
//   3. with {"Authorization":"Bearer <token>"} typed into the Headers editor
//      (the token of a user this script registers itself through POST /graphql)
//      and `{ me { id email } }` typed into the query editor, the run button
//      sends that header and the response pane shows the user's email;
//   4. `subscription { auditEvents { id } }` run the same way opens a
//      WebSocket to /graphql/ws whose connection_init carries that token, and
//      the response pane shows FORBIDDEN (the user is signed in but lacks
//      audit:read: without the token it would be UNAUTHENTICATED);
//   5. the token is not left in the browser's localStorage afterwards.
//
// Usage: node scripts/graphiql-offline-check.mjs BASE_URL [SCREENSHOT.png]
//   e.g. node scripts/graphiql-offline-check.mjs http://127.0.0.1:8080 /tmp/graphiql.png
//
// The server needs GraphiQL and introspection on (the development defaults) and
// must accept one registration from this host (RATE_LIMIT_AUTH_PER_MINUTE).
// Needs playwright-core (a devDependency in graphiql/package.json: run
// scripts/build-graphiql.sh or `npm ci` in graphiql/ first) and Chromium at
// /usr/bin/chromium (Debian: apt-get install -y chromium; override with
// CHROMIUM=/path). Exit 0 and a one-line PASS summary on success, 1 with the
// reasons (and a screenshot) on failure, 2 on bad usage.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';

const NAME = 'graphiql-offline-check';
const USAGE = `usage: node scripts/${NAME}.mjs http://127.0.0.1:PORT [screenshot.png]`;
const argv = process.argv.slice(2);
if (argv.includes('-h') || argv.includes('--help')) {
  console.log(USAGE);
  process.exit(0);
}
if (argv.length < 1 || argv.length > 2 || argv.some((a) => a.startsWith('-'))) {
  console.error(USAGE);
  process.exit(2);
}

let base;
try {
  base = new URL(argv[0]);
  if (!/^https?:$/.test(base.protocol)) throw new Error('not http(s)');
} catch {
  console.error(`${NAME}: not an http(s) URL: ${argv[0]}\n${USAGE}`);
  process.exit(2);
}
const origin = base.origin;
const pageUrl = `${origin}/graphql`;
const screenshot = path.resolve(argv[1] || path.join(tmpdir(), `${NAME}.png`));
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env.GRAPHIQL_CHECK_TIMEOUT_MS || 30000);
const EXPECTED_QUERY_FIELDS = ['me', 'user', 'roles', 'role'];
const ME_QUERY = '{ me { id email } }';
const SUBSCRIPTION = 'subscription { auditEvents { id } }';

if (!existsSync(executablePath)) {
  console.error(`FAIL ${pageUrl}: no Chromium at ${executablePath} (apt-get install -y chromium)`);
  process.exit(1);
}

// playwright-core lives in graphiql/node_modules, next to this script's folder.
const require = createRequire(new URL('../graphiql/package.json', import.meta.url));
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch {
  console.error(`FAIL ${pageUrl}: playwright-core is not installed: run scripts/build-graphiql.sh (or npm ci in graphiql/)`);
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

// --- a fresh user and its access token, straight through the API -----------
const email = `browser-${randomBytes(6).toString('hex')}@example.com`;
const password = 'correct horse battery staple 42';
let token;
try {
  const res = await fetch(pageUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({
      query: 'mutation($i: RegisterInput!){ register(input:$i){ accessToken } }',
      variables: { i: { email, password } },
    }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const body = await res.json().catch(() => null);
  token = body?.data?.register?.accessToken;
  if (res.status !== 200 || typeof token !== 'string' || !token) {
    throw new Error(`HTTP ${res.status}, ${clip(JSON.stringify(body?.errors ?? body))}`);
  }
} catch (err) {
  console.error(`FAIL ${pageUrl}: could not register ${email} through POST /graphql: ${err && err.message || err}`);
  process.exit(1);
}

// --- the browser -------------------------------------------------------------
const requests = [];        // every request the browser made: "METHOD url"
const offOrigin = [];       // those that would have left the origin (blocked)
const failures = [];        // same-origin requests that failed or answered >= 400
const pageErrors = [];      // uncaught exceptions
const cspErrors = [];       // CSP violations reported on the console
const consoleErrors = [];   // other console errors (reported, not fatal)
const introspections = [];  // promises of { status, body } of GraphiQL's introspection POSTs
const wsSent = [];          // text frames the page sent on WebSockets
const started = Date.now();

const isGraphqlPost = (req) => req.method() === 'POST' && req.url() === `${origin}/graphql`;
const isIntrospection = (req) => isGraphqlPost(req) && /\b__schema\b/.test(req.postData() || '');

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});

let status = 1;
let page = null;
let step = 'start';
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
    if (isIntrospection(res.request())) {
      introspections.push(res.json().then((body) => ({ status: res.status(), body }),
        (e) => ({ status: res.status(), body: null, error: String(e) })));
    }
  });

  page = await context.newPage();
  page.on('websocket', (ws) => {
    requests.push(`WS ${ws.url()}`);
    if (!isSameOrigin(ws.url())) offOrigin.push(`WS ${ws.url()}`);
    ws.on('framesent', (frame) => wsSent.push({ url: ws.url(), payload: String(frame.payload) }));
  });
  page.on('pageerror', (err) => pageErrors.push(clip(String(err && err.message || err))));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    (/Content Security Policy/i.test(text) ? cspErrors : consoleErrors).push(clip(text));
  });

  // 1. The page, then GraphiQL's introspection. A normal navigation: Chromium
  //    sends Accept: text/html,... itself.
  step = 'load the page';
  const firstIntrospection = page.waitForResponse((res) => isIntrospection(res.request()), { timeout: TIMEOUT_MS });
  firstIntrospection.catch(() => {}); // judged below; avoid an unhandled rejection meanwhile
  const nav = await page.goto(pageUrl, { waitUntil: 'load', timeout: TIMEOUT_MS });
  if (!nav) throw new Error(`no response for ${pageUrl}`);
  if (nav.status() !== 200) throw new Error(`GET ${pageUrl} answered HTTP ${nav.status()}`);
  const ctype = nav.headers()['content-type'] || '';
  if (!ctype.includes('text/html')) throw new Error(`GET ${pageUrl} answered content-type "${ctype}", not text/html`);
  const csp = nav.headers()['content-security-policy'] || '';

  // Rendered: the container, the query editor (CodeMirror), the run button.
  step = 'render GraphiQL';
  await page.locator('.graphiql-container').waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const queryEditor = page.locator('.graphiql-query-editor .CodeMirror').first();
  await queryEditor.waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const runButton = page.locator('.graphiql-execute-button');
  await runButton.waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const title = await page.title();
  if (!title.includes('GraphiQL')) throw new Error(`unexpected page title: ${JSON.stringify(title)}`);

  step = 'load the schema (introspection)';
  await firstIntrospection;
  // GraphiQL retries once without subscriptionType when the first answer has no data.
  await page.waitForLoadState('networkidle', { timeout: TIMEOUT_MS }).catch(() => {});
  const answers = await Promise.all(introspections);
  const bad = answers.filter((a) => a.status !== 200 || !a.body || a.body.errors || !a.body.data?.__schema);
  if (bad.length) {
    const why = bad.map((a) => `HTTP ${a.status}: ${a.body ? clip(JSON.stringify(a.body.errors ?? a.body), 600) : a.error}`);
    throw new Error(`the introspection query was refused (${bad.length} of ${answers.length} answers):\n  ${list(why)}`);
  }
  const typeCount = answers[0].body.data.__schema.types?.length ?? 0;

  // 2. Docs: the sidebar button, then the root Query type and its fields.
  step = 'open the documentation explorer';
  const docsButton = page.locator('.graphiql-sidebar button[aria-label="Show Documentation Explorer"]');
  if (await docsButton.count()) await docsButton.click({ timeout: TIMEOUT_MS });
  const explorer = page.locator('.graphiql-doc-explorer');
  await explorer.waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  step = 'open the Query type in the documentation explorer';
  await explorer.locator('a.graphiql-doc-explorer-type-name', { hasText: /^Query$/ }).first().click({ timeout: TIMEOUT_MS });
  await explorer.locator('.graphiql-doc-explorer-title', { hasText: /^Query$/ }).waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  await explorer.locator('a.graphiql-doc-explorer-field-name').first().waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const fields = (await explorer.locator('a.graphiql-doc-explorer-field-name').allTextContents()).map((s) => s.trim());
  const missing = EXPECTED_QUERY_FIELDS.filter((f) => !fields.includes(f));
  if (missing.length) {
    throw new Error(`the documentation explorer's Query lacks ${missing.join(', ')} (lists: ${fields.join(', ') || 'nothing'})`);
  }

  // 3. The token into the Headers editor, the query into the query editor, run.
  //    Click an editor, select all, type (insertText: one input event, so
  //    CodeMirror's bracket auto-closing does not double the braces).
  async function replaceEditorText(editor, text, what) {
    await editor.click({ timeout: TIMEOUT_MS });
    await page.keyboard.press('Control+A');
    await page.keyboard.insertText(text);
    const now = await editor.evaluate((el) => (el.CodeMirror ? el.CodeMirror.getValue() : el.textContent));
    if (now.trim() !== text) throw new Error(`the ${what} holds ${JSON.stringify(clip(now, 200))} after typing, not the typed text`);
  }

  step = 'type the token into the Headers editor';
  const headersSection = page.locator('section.graphiql-editor-tool[aria-label="Headers"]');
  if (!(await headersSection.isVisible())) {
    await page.locator('.graphiql-editor-tools button[data-name="headers"]').click({ timeout: TIMEOUT_MS });
  }
  // The section holds the Variables editor too, hidden: take the visible one.
  await replaceEditorText(headersSection.locator('.CodeMirror').filter({ visible: true }).first(),
    JSON.stringify({ Authorization: `Bearer ${token}` }), 'Headers editor');

  step = 'type the query into the query editor';
  await replaceEditorText(queryEditor, ME_QUERY, 'query editor');

  // GraphiQL re-parses the query editor (operation name included) 100 ms
  // after the last edit; a run before that still names the old `Me`.
  await page.waitForTimeout(400);

  step = 'run { me { id email } }';
  const isMeRun = (res) => isGraphqlPost(res.request()) && !isIntrospection(res.request()) &&
    (res.request().postData() || '').includes('me { id email }');
  const [res] = await Promise.all([
    page.waitForResponse(isMeRun, { timeout: TIMEOUT_MS }),
    runButton.click({ timeout: TIMEOUT_MS }),
  ]);
  const sentAuth = (await res.request().allHeaders())['authorization'] || '';
  if (sentAuth !== `Bearer ${token}`) {
    throw new Error(`the run did not send the Headers editor's token (authorization: ${JSON.stringify(clip(sentAuth, 40))})`);
  }
  const runBody = await res.json().catch(() => null);
  if (res.status() !== 200 || runBody?.data?.me?.email !== email) {
    throw new Error(`{ me } answered HTTP ${res.status()}: ${clip(JSON.stringify(runBody))}`);
  }
  step = 'see the email in the response pane';
  await page.waitForFunction((want) => {
    const el = document.querySelector('.graphiql-response .CodeMirror');
    return !!el && (el.textContent || '').includes(want);
  }, email, { timeout: TIMEOUT_MS });

  // 4. A subscription, through the same Headers token.
  step = 'type the subscription into the query editor';
  await replaceEditorText(queryEditor, SUBSCRIPTION, 'query editor');
  await page.waitForTimeout(400);
  step = 'run the subscription';
  await runButton.click({ timeout: TIMEOUT_MS });
  step = 'see FORBIDDEN from the subscription in the response pane';
  await page.waitForFunction(() => {
    const el = document.querySelector('.graphiql-response .CodeMirror');
    return !!el && /FORBIDDEN|UNAUTHENTICATED/.test(el.textContent || '');
  }, null, { timeout: TIMEOUT_MS });
  const answer = await page.locator('.graphiql-response .CodeMirror').first().textContent();
  if (!answer.includes('FORBIDDEN')) {
    throw new Error(`the subscription answered ${clip(answer)}, not FORBIDDEN: the token did not reach connection_init`);
  }
  const init = wsSent.find((f) => f.payload.includes('"connection_init"'));
  if (!init || !init.url.endsWith('/graphql/ws')) {
    throw new Error(`no connection_init was sent to /graphql/ws (sent: ${clip(JSON.stringify(wsSent))})`);
  }
  if (!init.payload.includes(`Bearer ${token}`)) {
    throw new Error('the connection_init payload does not carry the Headers token');
  }

  // 5. Late requests (fonts, lazy chunks, history writes) before judging.
  step = 'settle';
  await page.waitForLoadState('networkidle', { timeout: TIMEOUT_MS }).catch(() => {});
  const tokenStored = await page.evaluate((t) => {
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if ((localStorage.getItem(k) || '').includes(t)) return k;
    }
    return null;
  }, token);
  await page.screenshot({ path: screenshot });

  const problems = [];
  if (offOrigin.length) problems.push(`${offOrigin.length} request(s) to another origin:\n  ${offOrigin.join('\n  ')}`);
  if (failures.length) problems.push(`failed same-origin request(s):\n  ${list(failures)}`);
  if (pageErrors.length) problems.push(`page error(s):\n  ${list(pageErrors)}`);
  if (cspErrors.length) problems.push(`CSP violation(s):\n  ${list(cspErrors)}`);
  if (tokenStored) problems.push(`the access token was left in localStorage under ${JSON.stringify(tokenStored)}`);

  if (problems.length) {
    console.error(`FAIL ${pageUrl}\n${problems.join('\n')}\nall requests:\n  ${requests.join('\n  ')}\nscreenshot: ${screenshot}`);
  } else {
    const other = consoleErrors.length ? `, ${consoleErrors.length} other console error(s)` : '';
    console.log(`PASS ${pageUrl}: GraphiQL rendered ("${title}"), schema loaded (${typeCount} types), ` +
      `Docs lists Query.{${EXPECTED_QUERY_FIELDS.join(',')}}, me -> ${email} with the Headers token, ` +
      `subscription over /graphql/ws -> FORBIDDEN with the token in connection_init, ` +
      `token not in localStorage, ${requests.length} requests all same-origin, ` +
      `CSP ${csp ? 'header set' : 'header absent'}${other}, ${Date.now() - started} ms, screenshot ${screenshot}`);
    if (consoleErrors.length) console.error(`console errors:\n  ${list(consoleErrors)}`);
    status = 0;
  }
} catch (err) {
  console.error(`FAIL ${pageUrl} (step: ${step}): ${err && err.message || err}`);
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
